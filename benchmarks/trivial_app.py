"""The ingress benchmark's yardstick: the most trivial Flask JSON route there is.

Served by the same gunicorn settings as the bridge (bridge/gunicorn_conf.py), it parses
the JSON body and answers `{"ok": true}`: what any Flask JSON endpoint costs at least.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

app = Flask("trivial")


@app.post("/<path:_>")
def trivial(_: str) -> Any:
    request.get_json(force=True)
    return jsonify({"ok": True})
