"""A local Example Desk: the REST API example_desk talks to, and its agents' actions."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]


class FakeDesk:
    def __init__(self, token: str, webhook_secret: str) -> None:
        self.token, self.webhook_secret = token, webhook_secret
        self.lock = threading.Lock()
        self.contacts: dict[int, Json] = {}
        self.tickets: dict[int, Json] = {}
        self.activity: dict[int, list[Json]] = {}
        self.writes = 0
        self._ids = 100
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeDesk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = fake.handle(self.command, self.path, self.headers, body)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the API ------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        data = json.loads(body) if body else {}
        with self.lock:
            if method != "GET":
                self.writes += 1
            try:
                return self._route(method, parts, query, data)
            except (KeyError, ValueError):
                return 404, {"error": "not found"}

    def _route(self, method: str, parts: list[str], query: dict[str, str], data: Json) -> Any:
        match method, parts:
            case "GET", ["me"]:
                return 200, {"me": {"role": "api"}}
            case "GET", ["contacts"]:
                found = [
                    c for c in self.contacts.values() if c["external_id"] == query["external_id"]
                ]
                return 200, {"contacts": found}
            case "POST", ["contacts"]:
                contact = {**data, "id": self._next()}
                self.contacts[contact["id"]] = contact
                return 201, {"contact": contact}
            case "PATCH", ["contacts", cid]:
                self.contacts[int(cid)].update(data)
                return 200, {"contact": self.contacts[int(cid)]}
            case "GET", ["tickets"]:
                key = query["external_key"]
                return 200, {
                    "tickets": [t for t in self.tickets.values() if t["external_key"] == key]
                }
            case "POST", ["tickets"]:
                ticket = {**data, "id": self._next(), "status": "open", "messages": []}
                self.tickets[ticket["id"]] = ticket
                self.activity[ticket["id"]] = []
                return 201, {"ticket": {k: v for k, v in ticket.items() if k != "messages"}}
            case "GET", ["tickets", tid, "messages"]:
                return 200, {"messages": self.tickets[int(tid)]["messages"]}
            case "POST", ["tickets", tid, "messages"]:
                message = {**data, "id": self._next()}
                self.tickets[int(tid)]["messages"].append(message)
                self._log(int(tid), "message", "api", body=data["body"])
                return 201, {"message": message}
            case "PATCH", ["tickets", tid]:
                if self.tickets[int(tid)]["status"] != data["status"]:
                    self.tickets[int(tid)]["status"] = data["status"]
                    self._log(int(tid), "closed", "api")
                return 200, {"ticket": {"id": int(tid), "status": data["status"]}}
            case "GET", ["tickets", tid, "activity"]:
                after = int(query.get("after", "0"))
                return 200, {"activity": [a for a in self.activity[int(tid)] if a["seq"] > after]}
        return 404, {"error": "not found"}

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    def _log(self, tid: int, kind: str, by: str, **fields: Any) -> None:
        self.activity[tid].append({"seq": self._next(), "type": kind, "by": by, **fields})

    # -- agents, in the desk's own UI ---------------------------------------------------
    def agent(self, tid: str, kind: str, body: str = "", agent_id: int = 7) -> None:
        with self.lock:
            ticket = self.tickets[int(tid)]
            if kind in ("message", "note"):
                ticket["messages"].append({"id": self._next(), "body": body, "from": kind})
            if kind == "closed":
                ticket["status"] = "closed"
            self._log(int(tid), kind, "agent", agent_id=agent_id, body=body)

    def new_ticket(self, subject: str) -> str:
        """A ticket someone opened by e-mail."""
        with self.lock:
            tid = self._next()
            self.tickets[tid] = {
                "id": tid,
                "subject": subject,
                "external_key": None,
                "status": "open",
                "messages": [],
                "body": subject,
            }
            self.activity[tid] = []
            return str(tid)

    def webhook(self, tid: str, secret: str | None = None) -> tuple[dict[str, str], bytes]:
        body = json.dumps({"ticket_id": int(tid)}).encode()
        key = (secret or self.webhook_secret).encode()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Desk-Signature": signature}, body
