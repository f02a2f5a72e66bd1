"""Files at rest (issue 14 §5): no process keeps state at a path another local user could
plant or share, and the secrets scripts/dev generates stay private."""

from __future__ import annotations

import stat
import subprocess
import sys
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
    # In a process of its own: loading gunicorn's configuration sets up metrics directories.
    code = "import bridge.gunicorn_conf as c; print(c.control_socket_disable)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "True", done.stderr


def test_the_image_never_holds_scripts_devs_secrets() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".hitl-bridge" in ignored


def _state(tmp: Path, *, umask: str = "022") -> subprocess.CompletedProcess[str]:
    script = (
        f'umask {umask}; . "{ROOT}/scripts/lib.sh"; ensure_private_state state "{sys.executable}"'
    )
    return subprocess.run(["bash", "-c", script], cwd=tmp, capture_output=True, text=True)


def test_scripts_dev_keeps_its_secrets_private(tmp_path: Path) -> None:
    assert _state(tmp_path).returncode == 0
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "redis").stat().st_mode) == 0o700
    env = state / "env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env.read_text().split())
    assert set(values) == {"BRIDGE_SECRET", "ADMIN_TOKEN"}
    # Kept from one run to the next (Botpress's URL keeps working).
    assert _state(tmp_path).returncode == 0 and env.read_text().split() == [
        f"{k}={v}" for k, v in values.items()
    ]


def test_an_older_world_readable_state_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "redis").mkdir(parents=True)
    (state / "env").write_text("BRIDGE_SECRET=old-secret-0123456789abc\n")
    for path, mode in ((state, 0o755), (state / "redis", 0o777), (state / "env", 0o644)):
        path.chmod(mode)
    assert _state(tmp_path, umask="000").returncode == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "env").stat().st_mode) == 0o600
    assert (state / "env").read_text() == "BRIDGE_SECRET=old-secret-0123456789abc\n"


def test_the_dev_env_file_says_where_this_runs_redis_is(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("BRIDGE_SECRET=s\nREDIS_URL=redis://127.0.0.1:1111/0\nADMIN_TOKEN=a\n")
    env.chmod(0o600)
    script = f'. "{ROOT}/scripts/lib.sh"; set_env_line env REDIS_URL redis://127.0.0.1:2222/0'
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True)
    assert env.read_text().split() == [
        "BRIDGE_SECRET=s",
        "ADMIN_TOKEN=a",
        "REDIS_URL=redis://127.0.0.1:2222/0",
    ]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
