"""A local fake of Chatwoot's Application API, strict where the bridge touches it.

It follows the OpenAPI description (`/api/v1/accounts/{account_id}/...`): the
`api_access_token` header is required (401 without it or with another account's id),
ids are integers, answers have Chatwoot's shapes (`payload` wrappers, messages'
`message_type` as 0 incoming / 1 outgoing / 2 activity / 3 template), errors are 404
`{"error": ...}` and 422 `{"message": ..., "attributes": [...]}`. Contacts' identifiers and
e-mails are unique per account; a conversation needs the `source_id` of its contact in an
API inbox, and its first `message` is written as an outgoing message of the token's user,
as Chatwoot does. Messages take JSON or multipart/form-data (`attachments[]`), keep their
`content_attributes`, and attachments are served publicly at their `data_url` (Active
Storage's signed redirect URLs need no sign-in).

Tests act as agents (`add_agent`, `agent_reply`, `agent_note`, `assign`, `resolve`),
inject faults (`fail_next`, `fail_for`, `stall_for`, `rate_limit` answering 429 with
Retry-After as Rack::Attack does) and receive webhooks: every action fires the
subscribed account webhooks, which the fake records (`fired`) and, once `deliver` is on
(`post_webhooks_to`), posts on a thread of its own, signed with the webhook's secret
(`X-Chatwoot-Signature: sha256=<hex HMAC of "{timestamp}.{body}">`) when `signs` is true.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]
ACCOUNT_ID = 7
INBOX_ID = 3
API_USER_ID = 1
INCOMING, OUTGOING, ACTIVITY = 0, 1, 2


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"


class _Error(Exception):
    def __init__(self, status: int, body: Json) -> None:
        self.reply = _Reply(status, body)


def _not_found() -> _Error:
    return _Error(404, {"error": "Resource could not be found"})


def _invalid(message: str, *attributes: str) -> _Error:
    return _Error(422, {"message": message, "attributes": list(attributes)})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def parse_multipart(ctype: str, body: bytes) -> tuple[dict[str, str], list[Json]]:
    """The fields and files of a multipart/form-data body (422 when it is not one)."""
    if "boundary=" not in ctype:
        raise _invalid("multipart body without a boundary")
    boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    fields: dict[str, str] = {}
    files: list[Json] = []
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        params = dict(
            (p.split("=", 1)[0].strip(), p.split("=", 1)[1].strip().strip('"'))
            for p in disp.split(";")[1:]
            if "=" in p
        )
        if "filename" in params:
            files.append(
                {
                    "name": params.get("name", ""),
                    "filename": params["filename"],
                    "content_type": headers.get("content-type", "application/octet-stream"),
                    "data": data,
                }
            )
        else:
            fields[params.get("name", "")] = data.decode()
    return fields, files


class FakeChatwoot:
    """One Chatwoot account (ACCOUNT_ID) with an API inbox (INBOX_ID) on 127.0.0.1."""

    def __init__(self, *, api_token: str = "cw-token-5f2a9c8e1d7b", signs: bool = True) -> None:
        self.api_token = api_token
        self.signs = signs  # newer Chatwoot signs webhook deliveries
        self.lock = threading.RLock()
        self.url = ""
        self.requests: list[Recorded] = []
        self.faults: list[Json] = []
        self.users: dict[int, Json] = {
            API_USER_ID: {"id": API_USER_ID, "name": "Bridge Bot", "role": "administrator"}
        }
        self.inboxes: dict[int, Json] = {
            INBOX_ID: {"id": INBOX_ID, "name": "Botpress", "channel_type": "Channel::Api"},
            INBOX_ID + 1: {
                "id": INBOX_ID + 1,
                "name": "Site",
                "channel_type": "Channel::WebWidget",
            },
        }
        self.contacts: dict[int, Json] = {}
        self.contact_inboxes: list[Json] = []  # {contact_id, inbox_id, source_id}
        self.conversations: dict[int, Json] = {}
        self.messages: list[Json] = []
        self.webhooks: dict[int, Json] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.fired: list[Json] = []
        self.deliver = False
        self.delivered: list[int] = []  # statuses the bridge answered deliveries with
        self._ids = {"contact": 100, "conversation": 0, "message": 1000, "webhook": 0}
        self._failures: list[tuple[int, float | None]] = []
        self._fail_until = 0.0
        self._fail_status = 503
        self._stall_until = 0.0
        self._stall_hang = 5.0
        self._stall_apply = False
        self._limit: tuple[int, float] | None = None
        self._window = (0.0, 0)
        self._stopping = threading.Event()
        self._server: _QuietServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeChatwoot:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                hang = fake._stalled(self.command, self.path, headers, body)
                if hang is not None:
                    fake._stopping.wait(hang)
                    self.close_connection = True
                    return
                reply = fake._dispatch(self.command, self.path, headers, body)
                raw = reply.raw
                if raw is None:
                    raw = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._stopping.clear()
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- faults -------------------------------------------------------------------------
    def fail_next(self, n: int, status: int, retry_after: float | None = None) -> None:
        with self.lock:
            self._failures += [(status, retry_after)] * n

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every request with `status` for `seconds`; nothing is applied."""
        with self.lock:
            self._fail_status, self._fail_until = status, time.monotonic() + seconds

    def stall_for(self, seconds: float, *, hang: float = 5.0, apply: bool = False) -> None:
        """For `seconds`, every request hangs `hang` seconds and gets no answer; with
        `apply`, it is handled first (the write landed, its answer is lost)."""
        with self.lock:
            self._stall_hang, self._stall_apply = hang, apply
            self._stall_until = time.monotonic() + seconds

    def rate_limit(self, requests: int, window: float = 60.0) -> None:
        """Rack::Attack's throttle: over `requests` per `window`, 429 with Retry-After."""
        with self.lock:
            self._limit = (requests, window)

    # -- what it holds ------------------------------------------------------------------
    def calls(self, method: str, path_suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def writes(self) -> int:
        return sum(1 for r in self.requests if r.method != "GET")

    def messages_of(self, conversation_id: int | str) -> list[Json]:
        with self.lock:
            return [m for m in self.messages if m["conversation_id"] == int(conversation_id)]

    # -- agents -------------------------------------------------------------------------
    def add_agent(self, name: str) -> int:
        with self.lock:
            uid = max(self.users) + 1
            self.users[uid] = {"id": uid, "name": name, "role": "agent"}
            return uid

    def agent_reply(
        self,
        conversation_id: int | str,
        agent: int,
        text: str,
        *,
        private: bool = False,
        files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    ) -> Json:
        with self.lock:
            conv = self._conv(int(conversation_id))
            atts = [
                {"filename": n, "content_type": t, "data": d, "name": "attachments[]"}
                for n, t, d in files
            ]
            return self._add_message(conv, OUTGOING, agent, text, private, {}, atts)

    def agent_note(self, conversation_id: int | str, agent: int, text: str) -> Json:
        return self.agent_reply(conversation_id, agent, text, private=True)

    def assign(self, conversation_id: int | str, agent: int) -> None:
        with self.lock:
            conv = self._conv(int(conversation_id))
            self._assign(conv, agent, by=agent)

    def resolve(self, conversation_id: int | str, agent: int, status: str = "resolved") -> None:
        with self.lock:
            self._set_status(self._conv(int(conversation_id)), status, by=agent)

    def foreign_conversation(self) -> int:
        """A conversation someone started on the website widget (not the bridge's)."""
        with self.lock:
            cid = self._new_contact({"name": "Walk-in"})
            source = self._contact_inbox(cid, INBOX_ID + 1)
            conv = self._new_conversation(cid, INBOX_ID + 1, source, {})
            self._add_message(conv, INCOMING, None, "Hello from the widget", False, {}, [])
            return int(conv["id"])

    # -- webhooks -----------------------------------------------------------------------
    def post_webhooks_to(self, url: str) -> Json:
        """Register a webhook at `url` (as `chatwoot setup` would) and deliver from now on."""
        with self.lock:
            hook = self._new_webhook(
                {
                    "url": url,
                    "name": "test",
                    "subscriptions": [
                        "conversation_status_changed",
                        "conversation_updated",
                        "message_created",
                    ],
                }
            )
            self.deliver = True
            return hook

    def webhook_request(
        self, payload: Json, *, secret: str | None, at: float | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body Chatwoot sends for `payload` (signed when `secret`)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            ts = str(int(time.time() if at is None else at))
            headers["X-Chatwoot-Timestamp"] = ts
            headers["X-Chatwoot-Signature"] = sign(secret, ts, body)
            headers["X-Chatwoot-Delivery"] = secrets.token_hex(16)
        return headers, body

    def conversation_event(
        self, conversation_id: int | str, event: str = "conversation_updated"
    ) -> Json:
        with self.lock:
            conv = self._conv(int(conversation_id))
            return {**self._conv_json(conv), "event": event, "account": {"id": ACCOUNT_ID}}

    def _fire(self, event: str, payload: Json) -> None:
        body = {**payload, "event": event, "account": {"id": ACCOUNT_ID, "name": "Acme"}}
        for hook in list(self.webhooks.values()):
            if event not in hook["subscriptions"]:
                continue
            self.fired.append({"webhook": hook["id"], **body})
            if not self.deliver:
                continue
            headers, raw = self.webhook_request(body, secret=hook.get("secret"))
            url = hook["url"]

            def post(url: str = url, headers: dict[str, str] = headers, raw: bytes = raw) -> None:
                req = urllib.request.Request(url, data=raw, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        self.delivered.append(resp.status)
                except Exception as exc:
                    self.delivered.append(getattr(exc, "code", 0))

            t = threading.Thread(target=post, daemon=True)
            t.start()
            self._threads.append(t)

    # -- request handling ---------------------------------------------------------------
    def _stalled(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> float | None:
        with self.lock:
            if time.monotonic() >= self._stall_until:
                return None
            hang, apply = self._stall_hang, self._stall_apply
            path = urlsplit(target).path
            if not apply:
                self.requests.append(Recorded(method, path, {}, headers, body))
                fault = {"at": time.time(), "method": method, "path": path}
                self.faults.append({**fault, "fault": "stalled"})
                return hang
        reply = self._dispatch(method, target, headers, body)
        with self.lock:
            fault = {"at": time.time(), "method": method, "path": path, "status": reply.status}
            self.faults.append({**fault, "fault": "stalled after applying"})
        return hang

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
            if time.monotonic() < self._fail_until:
                self.faults.append(
                    {"at": time.time(), "path": parts.path, "fault": self._fail_status}
                )
                return _Reply(
                    self._fail_status, raw=b"Service Unavailable", content_type="text/plain"
                )
            if self._failures:
                status, retry_after = self._failures.pop(0)
                hdrs = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                text = b"Retry later\n" if status == 429 else b"Service Unavailable"
                return _Reply(status, headers=hdrs, raw=text, content_type="text/plain")
            if self._limit is not None:
                allowed, window = self._limit
                now = time.time()
                start = now - now % window
                if self._window[0] != start:
                    self._window = (start, 0)
                if self._window[1] >= allowed:
                    wait = max(1, int(start + window - now + 0.999))
                    return _Reply(
                        429,
                        headers={"Retry-After": str(wait)},
                        raw=b"Retry later\n",
                        content_type="text/plain",
                    )
                self._window = (start, self._window[1] + 1)
            try:
                return self._route(method, parts.path, query, headers, body)
            except _Error as exc:
                return exc.reply

    def _auth(self, headers: dict[str, str]) -> None:
        if not hmac.compare_digest(
            headers.get("api_access_token", "").encode(), self.api_token.encode()
        ):
            raise _Error(401, {"errors": ["You need to sign in or sign up before continuing."]})

    def _json(self, headers: dict[str, str], body: bytes) -> Json:
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Error(415, {"error": "Content-Type must be application/json"})
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _Error(400, {"error": "Invalid JSON"}) from exc
        if not isinstance(data, dict):
            raise _Error(400, {"error": "Invalid JSON"})
        return data

    def _route(
        self, method: str, path: str, q: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        if path.startswith("/rails/active_storage/"):
            got = self.files.get(path.rsplit("/", 2)[-2])
            if got is None:
                raise _not_found()
            return _Reply(200, raw=got[0], content_type=got[1])
        self._auth(headers)
        if path == "/api/v1/profile" and method == "GET":
            return _Reply(
                200,
                {
                    **self.users[API_USER_ID],
                    "available_name": "Bridge Bot",
                    "accounts": [{"id": ACCOUNT_ID, "role": "administrator"}],
                },
            )
        prefix = f"/api/v1/accounts/{ACCOUNT_ID}"
        if not path.startswith("/api/v1/accounts/"):
            raise _not_found()
        if path != prefix and not path.startswith(prefix + "/"):
            raise _Error(401, {"error": "You are not authorized to access this account"})
        seg = [s for s in path[len(prefix) :].split("/") if s]
        if not seg and method == "GET":
            return _Reply(
                200, {"id": ACCOUNT_ID, "name": "Acme", "locale": "en", "status": "active"}
            )
        if seg[:1] == ["inboxes"] and len(seg) == 2 and method == "GET":
            inbox = self.inboxes.get(_num(seg[1]))
            if inbox is None:
                raise _not_found()
            return _Reply(200, inbox)
        if seg[:1] == ["contacts"]:
            return self._contacts(method, seg[1:], q, headers, body)
        if seg == ["actions", "contact_merge"] and method == "POST":
            return self._merge(self._json(headers, body))
        if seg[:1] == ["conversations"]:
            return self._conversations(method, seg[1:], q, headers, body)
        if seg[:1] == ["webhooks"]:
            return self._webhooks(method, seg[1:], headers, body)
        raise _not_found()

    # -- contacts -----------------------------------------------------------------------
    def _contact_json(self, c: Json) -> Json:
        inboxes = [
            {
                "source_id": ci["source_id"],
                "inbox": {
                    "id": ci["inbox_id"],
                    "channel_type": self.inboxes[ci["inbox_id"]]["channel_type"],
                },
            }
            for ci in self.contact_inboxes
            if ci["contact_id"] == c["id"]
        ]
        return {**c, "contact_inboxes": inboxes}

    def _new_contact(self, fields: Json) -> int:
        self._ids["contact"] += 1
        cid = self._ids["contact"]
        self.contacts[cid] = {
            "id": cid,
            "name": fields.get("name") or "",
            "email": fields.get("email"),
            "identifier": fields.get("identifier"),
            "phone_number": None,
            "thumbnail": fields.get("avatar_url") or "",
            "additional_attributes": {},
            "custom_attributes": {},
            "created_at": int(time.time()),
            "last_activity_at": None,
            "blocked": False,
        }
        return cid

    def _contact_inbox(self, contact_id: int, inbox_id: int) -> str:
        for ci in self.contact_inboxes:
            if ci["contact_id"] == contact_id and ci["inbox_id"] == inbox_id:
                return str(ci["source_id"])
        source = secrets.token_hex(8)
        self.contact_inboxes.append(
            {"contact_id": contact_id, "inbox_id": inbox_id, "source_id": source}
        )
        return source

    def _check_unique(self, fields: Json, own: int | None = None) -> None:
        for c in self.contacts.values():
            if c["id"] == own:
                continue
            if fields.get("identifier") and c.get("identifier") == fields["identifier"]:
                raise _invalid("Identifier has already been taken", "identifier")
            email = fields.get("email")
            if email and str(c.get("email") or "").lower() == str(email).lower():
                raise _invalid("Email has already been taken", "email")

    def _contacts(
        self, method: str, seg: list[str], q: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        if seg == [] and method == "POST":
            data = self._json(headers, body)
            inbox = data.get("inbox_id")
            if not isinstance(inbox, int) or inbox not in self.inboxes:
                raise _invalid("Inbox must exist", "inbox_id")
            self._check_unique(data)
            cid = self._new_contact(data)
            source = self._contact_inbox(cid, inbox)
            return _Reply(
                200,
                {
                    "payload": {
                        "contact": self._contact_json(self.contacts[cid]),
                        "contact_inbox": {"inbox": self.inboxes[inbox], "source_id": source},
                    }
                },
            )
        if seg == ["search"] and method == "GET":
            term = q.get("q", "").lower()
            found = [
                self._contact_json(c)
                for c in self.contacts.values()
                if term
                and (c.get("identifier") or c.get("email"))
                and any(
                    term in str(c.get(k) or "").lower() for k in ("name", "email", "identifier")
                )
            ]
            return _Reply(
                200, {"meta": {"count": len(found), "current_page": "1"}, "payload": found[:15]}
            )
        if not seg:
            raise _not_found()
        contact = self.contacts.get(_num(seg[0]))
        if contact is None:
            raise _not_found()
        if len(seg) == 1 and method == "GET":
            return _Reply(200, {"payload": self._contact_json(contact)})
        if len(seg) == 1 and method == "PUT":
            data = self._json(headers, body)
            self._check_unique(data, own=contact["id"])
            for k in ("name", "email", "identifier"):
                if k in data:
                    contact[k] = data[k]
            if "avatar_url" in data:
                contact["thumbnail"] = data["avatar_url"]
            return _Reply(200, {"payload": self._contact_json(contact)})
        if seg[1:] == ["contact_inboxes"] and method == "POST":
            data = self._json(headers, body)
            inbox = data.get("inbox_id")
            if inbox not in self.inboxes:
                raise _invalid("Inbox must exist", "inbox_id")
            source = self._contact_inbox(contact["id"], int(inbox))
            return _Reply(200, {"source_id": source, "inbox": self.inboxes[int(inbox)]})
        if seg[1:] == ["conversations"] and method == "GET":
            convs = [
                self._conv_json(c)
                for c in self.conversations.values()
                if c["contact_id"] == contact["id"]
            ]
            return _Reply(200, {"payload": convs})
        raise _not_found()

    def _merge(self, data: Json) -> _Reply:
        base, mergee = data.get("base_contact_id"), data.get("mergee_contact_id")
        if not isinstance(base, int) or not isinstance(mergee, int) or base == mergee:
            raise _Error(400, {"error": "base_contact_id and mergee_contact_id must differ"})
        if base not in self.contacts or mergee not in self.contacts:
            raise _not_found()
        for conv in self.conversations.values():
            if conv["contact_id"] == mergee:
                conv["contact_id"] = base
        for m in self.messages:
            if m["sender_type"] == "Contact" and m["sender_id"] == mergee:
                m["sender_id"] = base
        for ci in self.contact_inboxes:
            if ci["contact_id"] == mergee:
                ci["contact_id"] = base
        del self.contacts[mergee]
        return _Reply(200, self._contact_json(self.contacts[base]))

    # -- conversations ------------------------------------------------------------------
    def _conv(self, cid: int) -> Json:
        conv = self.conversations.get(cid)
        if conv is None:
            raise _not_found()
        return conv

    def _conv_json(self, c: Json) -> Json:
        contact = self.contacts.get(c["contact_id"], {})
        assignee = self.users.get(c["assignee_id"]) if c["assignee_id"] else None
        return {
            "id": c["id"],
            "account_id": ACCOUNT_ID,
            "inbox_id": c["inbox_id"],
            "status": c["status"],
            "custom_attributes": dict(c["custom_attributes"]),
            "additional_attributes": {},
            "labels": [],
            "created_at": c["created_at"],
            "timestamp": c["updated_at"],
            "last_activity_at": c["updated_at"],
            "meta": {
                "sender": {
                    k: contact.get(k) for k in ("id", "name", "email", "identifier", "thumbnail")
                },
                "channel": self.inboxes[c["inbox_id"]]["channel_type"],
                "assignee": {**assignee, "available_name": assignee["name"]} if assignee else None,
            },
        }

    def _new_conversation(self, contact_id: int, inbox_id: int, source: str, attrs: Json) -> Json:
        self._ids["conversation"] += 1
        now = int(time.time())
        conv = {
            "id": self._ids["conversation"],
            "contact_id": contact_id,
            "inbox_id": inbox_id,
            "status": "open",
            "assignee_id": None,
            "custom_attributes": attrs,
            "created_at": now,
            "updated_at": now,
            "source_id": source,
        }
        self.conversations[conv["id"]] = conv
        self._fire("conversation_created", self._conv_json(conv))
        return conv

    def _message_json(self, m: Json) -> Json:
        return {k: v for k, v in m.items() if k != "_files"}

    def _add_message(
        self,
        conv: Json,
        mtype: int,
        sender: int | None,
        content: str,
        private: bool,
        attrs: Json,
        files: list[Json],
    ) -> Json:
        self._ids["message"] += 1
        mid = self._ids["message"]
        now = int(time.time())
        if mtype == INCOMING:
            sender_type, sender_id = "Contact", conv["contact_id"]
            who = self.contacts.get(sender_id, {})
        elif sender is None:
            sender_type, sender_id, who = None, None, {}
        else:
            sender_type, sender_id = "User", sender
            who = {**self.users[sender], "available_name": self.users[sender]["name"]}
        m: Json = {
            "id": mid,
            "content": content,
            "account_id": ACCOUNT_ID,
            "inbox_id": conv["inbox_id"],
            "conversation_id": conv["id"],
            "message_type": mtype,
            "created_at": now,
            "updated_at": now,
            "private": private,
            "status": "sent",
            "source_id": None,
            "content_type": "text",
            "content_attributes": attrs,
            "sender_type": sender_type,
            "sender_id": sender_id,
            "sender": who,
            "attachments": [],
        }
        base = f"{self.url}/rails/active_storage/blobs/redirect"
        for f in files:
            key = secrets.token_urlsafe(12)
            self.files[key] = (f["data"], f["content_type"])
            ftype = f["content_type"].split("/")[0]
            m["attachments"].append(
                {
                    "id": len(self.files),
                    "message_id": mid,
                    "account_id": ACCOUNT_ID,
                    "file_type": ftype if ftype in ("image", "audio", "video") else "file",
                    "extension": f["filename"].rpartition(".")[2] or None,
                    "data_url": f"{base}/{key}/{f['filename']}",
                    "thumb_url": "",
                    "file_size": len(f["data"]),
                    "file_name": f["filename"],
                }
            )
        if not m["attachments"]:
            del m["attachments"]
        self.messages.append(m)
        conv["updated_at"] = now
        hook = {
            **self._message_json(m),
            "message_type": ["incoming", "outgoing", "activity", "template"][mtype],
            "conversation": self._conv_json(conv),
        }
        self._fire("message_created", hook)
        return m

    def _assign(self, conv: Json, agent: int | None, by: int) -> None:
        conv["assignee_id"] = agent
        name = self.users[agent]["name"] if agent else "nobody"
        self._add_message(
            conv, ACTIVITY, None, f"Assigned to {name} by {self.users[by]['name']}", False, {}, []
        )
        self._fire(
            "conversation_updated",
            {
                **self._conv_json(conv),
                "changed_attributes": [{"assignee_id": {"current_value": agent}}],
            },
        )

    def _set_status(self, conv: Json, status: str, by: int) -> None:
        if conv["status"] == status:
            return
        conv["status"] = status
        self._add_message(
            conv,
            ACTIVITY,
            None,
            f"Conversation was marked {status} by {self.users[by]['name']}",
            False,
            {},
            [],
        )
        self._fire("conversation_status_changed", self._conv_json(conv))

    def _conversations(
        self, method: str, seg: list[str], q: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        if seg == [] and method == "POST":
            data = self._json(headers, body)
            source = data.get("source_id")
            if not isinstance(source, str) or not source:
                raise _invalid("source_id is required", "source_id")
            ci = next((c for c in self.contact_inboxes if c["source_id"] == source), None)
            inbox = data.get("inbox_id", ci["inbox_id"] if ci else None)
            if ci is None or ci["inbox_id"] != inbox:
                raise _not_found()
            if "contact_id" in data and data["contact_id"] != ci["contact_id"]:
                raise _invalid("contact does not match the source_id", "contact_id")
            attrs = data.get("custom_attributes") or {}
            if not isinstance(attrs, dict):
                raise _invalid("custom_attributes must be an object", "custom_attributes")
            conv = self._new_conversation(ci["contact_id"], ci["inbox_id"], source, attrs)
            first = data.get("message")
            if first is not None:
                if not isinstance(first, dict) or not isinstance(first.get("content"), str):
                    raise _invalid("message content is required", "message")
                self._add_message(conv, OUTGOING, API_USER_ID, first["content"], False, {}, [])
            return _Reply(
                200, {"id": conv["id"], "account_id": ACCOUNT_ID, "inbox_id": conv["inbox_id"]}
            )
        if not seg:
            raise _not_found()
        conv = self._conv(_num(seg[0]))
        rest = seg[1:]
        if rest == [] and method == "GET":
            return _Reply(200, self._conv_json(conv))
        if rest == ["toggle_status"] and method == "POST":
            status = self._json(headers, body).get("status")
            if status not in ("open", "resolved", "pending", "snoozed"):
                raise _invalid("status is not valid", "status")
            self._set_status(conv, str(status), by=API_USER_ID)
            return _Reply(
                200,
                {
                    "meta": {},
                    "payload": {
                        "success": True,
                        "current_status": status,
                        "conversation_id": conv["id"],
                    },
                },
            )
        if rest == ["assignments"] and method == "POST":
            agent = self._json(headers, body).get("assignee_id")
            if agent not in self.users:
                raise _not_found()
            self._assign(conv, int(agent), by=API_USER_ID)
            return _Reply(200, self.users[int(agent)])
        if rest == ["messages"] and method == "GET":
            mine = [m for m in self.messages if m["conversation_id"] == conv["id"]]
            if "after" in q:
                after = _num(q["after"])
                page = [m for m in mine if m["id"] > after][:100]
            elif "before" in q:
                before = _num(q["before"])
                page = [m for m in mine if m["id"] < before][-20:]
            else:
                page = mine[-20:]
            meta = self._conv_json(conv)["meta"]
            return _Reply(
                200,
                {
                    "meta": {"contact": meta["sender"], "assignee": meta["assignee"], "labels": []},
                    "payload": [self._message_json(m) for m in page],
                },
            )
        if rest == ["messages"] and method == "POST":
            ctype = headers.get("content-type", "")
            files: list[Json] = []
            if ctype.startswith("multipart/form-data"):
                fields, files = parse_multipart(ctype, body)
                if any(f["name"] != "attachments[]" for f in files):
                    raise _invalid("files go in attachments[]", "attachments")
                data: Json = dict(fields)
                data["private"] = fields.get("private", "false") == "true"
                if "content_attributes" in fields:
                    try:
                        data["content_attributes"] = json.loads(fields["content_attributes"])
                    except ValueError as exc:
                        raise _invalid(
                            "content_attributes is not JSON", "content_attributes"
                        ) from exc
            else:
                data = self._json(headers, body)
            content = data.get("content")
            if not isinstance(content, str) or (not content and not files):
                raise _invalid("Content can't be blank", "content")
            kind = data.get("message_type", "outgoing")
            if kind not in ("incoming", "outgoing"):
                raise _invalid("message_type is not valid", "message_type")
            if (
                kind == "incoming"
                and self.inboxes[conv["inbox_id"]]["channel_type"] != "Channel::Api"
            ):
                raise _invalid("Incoming messages are only allowed in Api inboxes", "message_type")
            attrs = data.get("content_attributes") or {}
            if not isinstance(attrs, dict):
                raise _invalid("content_attributes must be an object", "content_attributes")
            m = self._add_message(
                conv,
                INCOMING if kind == "incoming" else OUTGOING,
                API_USER_ID,
                content,
                bool(data.get("private")),
                attrs,
                files,
            )
            return _Reply(200, self._message_json(m))
        raise _not_found()

    # -- webhooks -----------------------------------------------------------------------
    def _new_webhook(self, data: Json) -> Json:
        self._ids["webhook"] += 1
        hook = {
            "id": self._ids["webhook"],
            "account_id": ACCOUNT_ID,
            "url": data["url"],
            "name": data.get("name") or "",
            "subscriptions": list(data.get("subscriptions") or []),
        }
        if self.signs:
            hook["secret"] = secrets.token_urlsafe(24)
        self.webhooks[hook["id"]] = hook
        return hook

    def _webhooks(
        self, method: str, seg: list[str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        if seg == [] and method == "GET":
            return _Reply(200, [dict(h) for h in self.webhooks.values()])
        if seg == [] and method == "POST":
            data = self._check_webhook(self._json(headers, body))
            return _Reply(200, dict(self._new_webhook(data)))
        if len(seg) == 1:
            hook = self.webhooks.get(_num(seg[0]))
            if hook is None:
                raise _not_found()
            if method == "PATCH":
                data = self._check_webhook(self._json(headers, body), partial=True)
                hook.update(
                    {k: v for k, v in data.items() if k in ("url", "name", "subscriptions")}
                )
                return _Reply(200, dict(hook))
            if method == "DELETE":
                del self.webhooks[hook["id"]]
                return _Reply(200, None)
        raise _not_found()

    @staticmethod
    def _check_webhook(data: Json, partial: bool = False) -> Json:
        allowed = {
            "conversation_created",
            "conversation_status_changed",
            "conversation_updated",
            "message_created",
            "message_updated",
            "contact_created",
            "contact_updated",
            "webwidget_triggered",
            "conversation_typing_on",
            "conversation_typing_off",
        }
        url = data.get("url")
        if (not partial or "url" in data) and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise _invalid("Url is invalid", "url")
        subs = data.get("subscriptions", [])
        if not isinstance(subs, list) or any(s not in allowed for s in subs):
            raise _invalid("Subscriptions are invalid", "subscriptions")
        return data


def _num(text: str) -> int:
    """A path or query id: an integer, else 404 as Rails' finders answer."""
    if not (text.isascii() and text.isdigit()):
        raise _not_found()
    return int(text)


def running(fake: FakeChatwoot) -> Iterator[FakeChatwoot]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


__all__ = ["ACCOUNT_ID", "API_USER_ID", "INBOX_ID", "FakeChatwoot", "running", "sign"]
