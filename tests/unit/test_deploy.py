"""Procfile, app.json, the compose file and the image name the same processes, and they exist.

Docker cannot run here, so the files are checked statically; the commands themselves run in
the integration tests (tests/support/processes.py starts them from the Procfile).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import procfile
from bridge.config import Settings
from bridge.helpdesks.inbox.files import MAX_FILE_BYTES
from tests.conftest import SECRET
from tests.support.nginx import TEMPLATE, VARIABLES, render
from workers.flower import auth_problems

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"web", "worker", "beat", "flower", "live"}


@pytest.fixture(scope="module")
def procs() -> dict[str, str]:
    return procfile.read(ROOT / "Procfile")


def test_the_procfile_has_every_process_type(procs: dict[str, str]) -> None:
    assert set(procs) == TYPES


def test_app_json_runs_procfile_types_with_redis(procs: dict[str, str]) -> None:
    app = json.loads((ROOT / "app.json").read_text())
    assert set(app["formation"]) == {"web", "worker", "beat"}
    assert set(app["formation"]) <= set(procs)
    assert [a["plan"].split(":")[0] for a in app["addons"]] == ["heroku-redis"]
    env = app["env"]
    assert env["BRIDGE_SECRET"]["generator"] == "secret"
    assert env["ADMIN_TOKEN"]["generator"] == "secret"
    assert env["BOTPRESS_WEBHOOK_URL"]["required"] is True
    assert env["REDIS_SSL_CERT_REQS"]["value"] == "none"
    assert "HELPDESK" in env and "FLOWER_BASIC_AUTH" in env
    # Heroku installs requirements.txt, not the project: no console script, so post-deploy
    # scripts run the CLI as a module from the checkout.
    for command in app["scripts"].values():
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "bridge.cli"], command
        out = subprocess.run(
            [sys.executable, "-m", words[2], "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert words[3] in out, out


def test_compose_runs_each_procfile_type_from_the_one_image(procs: dict[str, str]) -> None:
    services = compose()["services"]
    bridge = {n: s for n, s in services.items() if n not in ("redis", "nginx")}
    assert {n: s["command"] for n, s in bridge.items()} == {t: [t] for t in TYPES}
    assert {s["build"]["dockerfile"] for s in bridge.values()} == {"deploy/Dockerfile"}
    assert len({s["image"] for s in bridge.values()}) == 1
    redis_cmd = services["redis"]["command"]
    assert "--appendonly" in redis_cmd and "noeviction" in redis_cmd
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert "redis-data" in compose()["volumes"]


def compose() -> Any:
    return yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())


def test_only_nginx_publishes_a_port() -> None:
    services = compose()["services"]
    assert {n for n, s in services.items() if s.get("ports")} == {"nginx"}
    nginx = services["nginx"]
    [published] = nginx["ports"]
    # The host's port goes to the one nginx listens on, which proxies to web's PORT.
    assert published.rsplit(":", 1)[1] == nginx["environment"]["PORT"]
    host, port = nginx["environment"]["UPSTREAM"].split(":")
    assert host == "web" and port == services["web"]["environment"]["PORT"]
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    # The consoles' event streams go to the live process, on its LIVE_PORT.
    host, port = nginx["environment"]["LIVE_UPSTREAM"].split(":")
    assert host == "live" and port == services["live"]["environment"]["LIVE_PORT"]
    assert nginx["depends_on"]["live"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(services["live"]["healthcheck"]["test"])
    # Flower is never started with the rest nor published (docs/operating.md, "Flower").
    assert services["flower"]["profiles"] == ["flower"]


def test_compose_renders_the_nginx_template_with_the_official_image() -> None:
    nginx = compose()["services"]["nginx"]
    # The official image, pinned to a patch release.
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+(-alpine)?", nginx["image"])
    assert "./nginx.conf:/etc/nginx/templates/nginx.conf.template:ro" in nginx["volumes"]
    env = nginx["environment"]
    # The template is the whole nginx.conf, not a conf.d snippet.
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    # Compose reads "$$" as "$"; the image's envsubst then replaces only these two names.
    pattern = re.compile(env["NGINX_ENVSUBST_FILTER"].replace("$$", "$"))
    names = {"PORT", "UPSTREAM", "LIVE_UPSTREAM", "HOME", "HOSTNAME", "PATH", "NGINX_VERSION"}
    assert {n for n in names if pattern.search(n)} == set(VARIABLES)


def test_the_nginx_template_renders_with_envsubst() -> None:
    template = TEMPLATE.read_text()
    assert set(re.findall(r"\$\{(\w+)\}", template)) == set(VARIABLES)
    rendered = render(8080, "web:8000", "live:8001")
    assert "${" not in rendered
    assert re.search(r"^\s*listen 8080 default_server;", rendered, re.M)
    assert re.search(r"^\s*server web:8000;", rendered, re.M)
    assert re.search(r"^\s*server live:8001;", rendered, re.M)
    # nginx's own variables survive the rendering.
    nginx_vars = set(re.findall(r"\$[a-z_0-9]+", template))
    assert {"$uri", "$remote_addr", "$hitl_log_path", "$status"} <= nginx_vars
    assert nginx_vars == set(re.findall(r"\$[a-z_0-9]+", rendered))
    # The image and the tests pass these on the command line: in the file they would clash.
    assert not re.search(r"^\s*(daemon|user)\s", rendered, re.M)

    def directive(name: str) -> str:
        [value] = re.findall(rf"^\s*{name}\s+([^;]+);", rendered, re.M)
        return str(value)

    # The bridge's own limit (1 MiB): nginx refuses nothing the bridge would take; only the
    # console's reply route takes files, up to 10 MiB with their form.
    assert re.findall(r"^\s*client_max_body_size\s+([^;]+);", rendered, re.M) == ["1m", "11m"]
    assert Settings(bridge_secret=SECRET).max_body_bytes == 1024 * 1024
    reply = re.search(r"location ~ (\S+) \{\s*client_max_body_size 11m;", rendered)
    assert reply and re.fullmatch(reply.group(1), "/console/c/c_abc/reply")
    assert not re.fullmatch(reply.group(1), "/botpress/x/botSendsMessage")
    assert MAX_FILE_BYTES + 64 * 1024 <= 11 * 1024 * 1024
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert 0 < int(directive(timeout).removesuffix("s")) <= 15
    assert directive("proxy_request_buffering") == "on"
    # Everything buffered but the consoles' event streams, which go to the live process as
    # they come, and may stay open long.
    assert re.findall(r"^\s*proxy_buffering\s+([^;]+);", rendered, re.M) == ["on", "off"]
    events = re.search(r"location = /console/events \{([^}]*)\}", rendered)
    assert events, "no location for /console/events"
    assert "proxy_pass http://hitl_live;" in events.group(1)
    assert re.search(r"proxy_buffering off;", events.group(1))
    [read] = re.findall(r"proxy_read_timeout (\d+)h;", events.group(1))
    assert int(read) >= 1
    assert directive("server_tokens") == "off"
    assert "$request_uri" not in rendered and "$request " not in rendered
    assert re.search(r"^\s*access_log \S+ hitl_json;", rendered, re.M)


def test_the_image_entrypoint_exists_and_execs_the_procfile_lines(procs: dict[str, str]) -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    # tests/unit/test_lock.py holds them to one patch release.
    assert stages and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", s) for s in stages)
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\w+", final, re.M), "the image must not run as root"
    assert not re.search(r"apt-get install|build-essential|gcc", final)
    [entry] = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", final, re.M).group(1))  # type: ignore[union-attr]
    assert entry == "/app/deploy/entrypoint.sh"
    assert "COPY deploy/entrypoint.sh ./deploy/entrypoint.sh" in final
    assert "COPY Procfile ./Procfile" in final and "WORKDIR /app" in final
    script = ROOT / "deploy" / "entrypoint.sh"
    assert script.is_file() and os.access(script, os.X_OK)
    for name, command in procs.items():
        out = subprocess.run(
            [str(script), "--print", name], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == command


def test_commands_name_installed_programs_and_importable_modules(procs: dict[str, str]) -> None:
    modules: set[str] = set()
    for command in procs.values():
        words = shlex.split(command)
        assert shutil.which(words[0], path=str(Path(sys.executable).parent)), words[0]
        for i, w in enumerate(words):
            if w in ("-A", "-m"):
                modules.add(words[i + 1])
            elif w.startswith("python:"):
                modules.add(w.removeprefix("python:"))
            elif re.fullmatch(r"[\w.]+:\w+", w):
                modules.add(w.split(":")[0])
    assert modules == {
        "bridge.gunicorn_conf",
        "bridge.wsgi",
        "workers.worker",
        "workers.flower",
        "bridge.helpdesks.inbox.live",
    }
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BRIDGE_SECRET": SECRET,
        "REDIS_URL": "redis://127.0.0.1:1/0",  # importing must not need Redis
        "PYTHONPATH": str(ROOT),
    }
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    subprocess.run([sys.executable, "-c", code, *sorted(modules)], env=env, check=True)


def test_flower_refuses_to_run_open() -> None:
    assert auth_problems({})
    assert auth_problems({"FLOWER_BASIC_AUTH": "ops"})
    assert auth_problems({"FLOWER_BASIC_AUTH": "ops:short"})
    assert auth_problems({"FLOWER_BASIC_AUTH": "ops:long-enough-pass"}) == []


def test_an_installed_bridge_runs_the_procfiles_processes(
    procs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip puts no Procfile beside the package: `hitl-bridge dev` runs the same lines anyway,
    # from the current folder.
    assert procs == procfile.INSTALLED
    monkeypatch.setattr(procfile, "ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert procfile.home() == tmp_path and procfile.read() == procs
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    (tmp_path / "gunicorn").write_text('#!/bin/sh\necho "$PWD $*"\n')
    (tmp_path / "gunicorn").chmod(0o755)
    with out.open("wb") as fh:
        assert procfile.spawn("web", env, stdout=fh).wait(10) == 0
    assert out.read_text().split() == [str(tmp_path), *procs["web"].split()[1:]]
