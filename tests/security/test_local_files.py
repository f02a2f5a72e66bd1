"""Files at rest (issue 14 §5): no process keeps state at a path another local user could
plant or share, and the secrets scripts/dev generates stay private."""

from __future__ import annotations

import importlib
from pathlib import Path

from celery.beat import PersistentScheduler
from celery.utils.imports import symbol_by_name

from bridge import procfile
from bridge.config import Settings
from tests.conftest import SECRET
from workers.celery_app import make_celery

ROOT = Path(__file__).resolve().parents[2]


def test_beat_keeps_its_schedule_in_memory() -> None:
    app = make_celery(Settings.from_env({"BRIDGE_SECRET": SECRET}))
    scheduler = symbol_by_name(app.conf.beat_scheduler)
    assert not issubclass(scheduler, PersistentScheduler)  # no shelve (pickle) file at all
    beat = procfile.read(ROOT / "Procfile")["beat"]
    assert "--schedule" not in beat and "/tmp" not in beat and " -s " not in beat


def test_gunicorn_opens_no_control_socket() -> None:
    conf = importlib.import_module("bridge.gunicorn_conf")
    assert conf.control_socket_disable is True


def test_the_image_never_holds_scripts_devs_secrets() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".hitl-bridge" in ignored
