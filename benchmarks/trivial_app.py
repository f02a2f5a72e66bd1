"""The ingress benchmark's yardsticks: the most trivial Flask JSON routes there are.

Served by the same gunicorn settings as the bridge (bridge/gunicorn_conf.py):
- `/trivial`: parses the JSON body and answers `{"ok": true}`, what any Flask JSON
  endpoint costs at least;
- `/stored`: the same plus one Redis round trip (a PING, through the bridge's own client
  settings), what any endpoint that stores before it answers costs at least.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import redis
from flask import Flask, jsonify, request

from bridge.redis_client import connect

app = Flask("trivial")


@cache
def _redis() -> redis.Redis:
    # Built in the gunicorn worker on first use, never before the fork.
    return connect(os.environ["REDIS_URL"])


@app.post("/stored")
def stored() -> Any:
    request.get_json(force=True)
    _redis().ping()
    return jsonify({"ok": True})


@app.post("/<path:_>")
def trivial(_: str) -> Any:
    request.get_json(force=True)
    return jsonify({"ok": True})
