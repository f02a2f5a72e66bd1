"""A local fake of the Freshdesk API v2, strict where the bridge touches it, for adapter,
conformance, reliability and end-to-end tests.

As the API reference (developers.freshdesk.com/api) describes: HTTP Basic with the API key
and any password (401 `{"code": "invalid_credentials", "message": …}` otherwise); integer
ids; contacts unique by `unique_external_id` and e-mail (agents' e-mails included), a
clash answered 409 `duplicate_value` with the holder's id in `additional_info.user_id`;
tickets that need a requester, `status` 2-5, `priority` 1-4, `source` from the documented
list; validation errors as `{"description": "Validation failed", "errors": [{"field",
"message", "code"}]}`; notes (JSON or multipart with `attachments[]`), replies, a ticket's
conversations oldest first with `page`/`per_page` (at most 100), the ticket list with
`updated_since`/`order_by`/`order_type`; attachments served at expiring signed URLs.

Test controls: agents act (`agent_reply`, `agent_note`, `assign`, `resolve`); an
automation rule (`add_rule`) posts its webhook when an agent acts on a ticket with the
rule's tag, to `post_webhooks_to(url)`; `rate_limit(n, window)` enforces a per-minute
limit with X-RateLimit-Total / -Remaining / -Used-CurrentRequest and 429 + Retry-After;
`fail_for(seconds, status)` and `stall_for(seconds, apply=…)` inject outages and timeouts;
`require_on_resolve(field)` makes resolving refused (400) as a required-for-closure field
does; every request is recorded (`requests`), every injected fault too (`faults`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import math
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]
API_AGENT_ID = 5000
SOURCES = {1, 2, 3, 5, 6, 7, 9, 10}
#: How long the fake's signed attachment URLs work (Freshdesk's are pre-signed S3 URLs).
ATTACHMENT_URL_TTL = 300


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


class _Error(Exception):
    def __init__(self, status: int, body: Json) -> None:
        self.reply = _Reply(status, body)


def _invalid(*errors: tuple[str, str, str], status: int = 400) -> _Error:
    return _Error(
        status,
        {
            "description": "Validation failed",
            "errors": [{"field": f, "message": m, "code": c} for f, m, c in errors],
        },
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(body_html: str) -> str:
    """body_text as Freshdesk derives it from an HTML body."""
    text = re.sub(r"<br\s*/?>", "\n", body_html)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class FakeFreshdesk:
    """A Freshdesk account on 127.0.0.1; `url` is its base URL once started."""

    def __init__(self, *, api_key: str = "fd-api-key-0123456789abcdef") -> None:
        self.api_key = api_key
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.faults: list[Json] = []
        self.agents: dict[int, Json] = {
            API_AGENT_ID: {"id": API_AGENT_ID, "name": "Bridge API", "email": "api@example.com"}
        }
        self.contacts: dict[int, Json] = {}
        self.tickets: dict[int, Json] = {}
        self.conversations: dict[int, list[Json]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.url_ttl = ATTACHMENT_URL_TTL  # how long a pre-signed attachment URL works
        self.rules: list[Json] = []
        self.fired: list[int] = []
        self.deliver: Callable[[str, bytes], None] | None = None
        self.required_on_resolve: str = ""
        self._limit: tuple[int, float] | None = None
        self._window = (0.0, 0)
        self.limited = 0
        self._fail_until = 0.0
        self._fail_status = 503
        self._stall_until = 0.0
        self._stall_hang = 5.0
        self._stall_apply = False
        self._stopping = threading.Event()
        self._next_id = 100
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeFreshdesk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                if reply.raw is None and reply.body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

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

    # -- test controls ------------------------------------------------------------------
    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every request with `status` for `seconds` (nothing applied)."""
        with self.lock:
            self._fail_status, self._fail_until = status, time.monotonic() + seconds

    def stall_for(self, seconds: float, *, hang: float = 5.0, apply: bool = False) -> None:
        """For `seconds`, every request hangs `hang` seconds and gets no answer; with
        `apply`, it is handled first (the write landed, its answer was lost)."""
        with self.lock:
            self._stall_hang, self._stall_apply = hang, apply
            self._stall_until = time.monotonic() + seconds

    def rate_limit(self, requests: int, window: float = 60.0) -> None:
        """Allow `requests` per `window` seconds (a minute, or a scaled-down one)."""
        with self.lock:
            self._limit, self._window, self.limited = (requests, window), (0.0, 0), 0

    def require_on_resolve(self, field_name: str) -> None:
        """Resolving is refused until the ticket's `field_name` is set (a field "required
        when resolving", as an admin may configure)."""
        self.required_on_resolve = field_name

    def add_agent(self, name: str, email: str = "") -> int:
        with self.lock:
            aid = self._id()
            self.agents[aid] = {"id": aid, "name": name, "email": email or f"a{aid}@agents.test"}
            return aid

    def add_rule(self, tag: str, body_template: str = '{"ticket_id": {{ticket.id}}}') -> None:
        """An automation rule on ticket updates: when an agent replies, adds a note, changes
        the status or the agent of a ticket with `tag`, it triggers its webhook."""
        with self.lock:
            self.rules.append({"tag": tag, "body": body_template})

    def post_webhooks_to(self, url: str) -> None:
        def post(target: str, body: bytes) -> None:
            req = urllib.request.Request(
                target, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=10).close()

        self.deliver = lambda _path, body: post(url, body)

    def webhook_body(self, ticket_id: int | str) -> bytes:
        return json.dumps({"ticket_id": int(ticket_id)}).encode()

    def agent_reply(
        self, ticket_id: int | str, agent_id: int, text: str, attachments: list[Json] | None = None
    ) -> int:
        """An agent replies to the requester (source 0, public)."""
        with self.lock:
            t = self.tickets[int(ticket_id)]
            atts = [self._file(a["name"], a["content_type"], a["data"]) for a in attachments or []]
            c = self._add(t, agent_id, html.escape(text), private=False, incoming=False, source=0)
            c["attachments"] = atts
            self._agent_acted(t)
            return int(c["id"])

    def agent_note(
        self, ticket_id: int | str, agent_id: int, text: str, private: bool = True
    ) -> int:
        with self.lock:
            t = self.tickets[int(ticket_id)]
            c = self._add(t, agent_id, html.escape(text), private=private, incoming=False, source=2)
            self._agent_acted(t)
            return int(c["id"])

    def assign(self, ticket_id: int | str, agent_id: int) -> None:
        with self.lock:
            t = self.tickets[int(ticket_id)]
            t["responder_id"] = agent_id
            self._agent_acted(t)

    def resolve(self, ticket_id: int | str, status: int = 4) -> None:
        with self.lock:
            t = self.tickets[int(ticket_id)]
            t["status"] = status
            self._agent_acted(t)

    def notes(self, ticket_id: int | str) -> list[Json]:
        with self.lock:
            return list(self.conversations.get(int(ticket_id), []))

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def writes(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.method != "GET")

    # -- internals ----------------------------------------------------------------------
    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _touch(self, t: Json) -> None:
        # Whole seconds, as Freshdesk's timestamps; never backwards.
        t["updated_at"] = max(t["updated_at"], _iso(time.time()))

    def _agent_acted(self, t: Json) -> None:
        self._touch(t)
        for rule in self.rules:
            if rule["tag"] in t["tags"]:
                self.fired.append(t["id"])
                body = rule["body"].replace("{{ticket.id}}", str(t["id"])).encode()
                if self.deliver is not None:
                    deliver = self.deliver
                    threading.Thread(target=deliver, args=("", body), daemon=True).start()

    def _file(self, name: str, ctype: str, data: bytes) -> Json:
        aid = self._id()
        key = hashlib.sha256(f"{aid}:{name}".encode()).hexdigest()[:20]
        self.files[key] = (data, ctype)
        return {
            "id": aid,
            "name": name,
            "content_type": ctype,
            "size": len(data),
            "attachment_url": self._signed(key),
            "created_at": _iso(time.time()),
            "updated_at": _iso(time.time()),
        }

    def _signed(self, key: str) -> str:
        """A pre-signed storage URL for the file, good for ATTACHMENT_URL_TTL seconds (each
        read of a conversation signs its attachments' URLs afresh, as Freshdesk does)."""
        expires = int(time.time() + self.url_ttl)
        sig = hmac.new(self.api_key.encode(), f"{key}.{expires}".encode(), "sha256").hexdigest()
        return f"{self.url}/s3/{key}?Expires={expires}&Signature={sig}"

    def _fresh(self, c: Json) -> Json:
        atts = []
        for a in c["attachments"]:
            key = urlsplit(a["attachment_url"]).path.rsplit("/", 1)[-1]
            atts.append({**a, "attachment_url": self._signed(key)})
        return {**c, "attachments": atts}

    def _add(
        self,
        t: Json,
        user_id: int,
        body_html: str,
        *,
        private: bool,
        incoming: bool,
        source: int,
        attachments: list[Json] | None = None,
    ) -> Json:
        now = _iso(time.time())
        c = {
            "id": self._id(),
            "body": body_html,
            "body_text": _text(body_html),
            "incoming": incoming,
            "private": private,
            "user_id": user_id,
            "support_email": None,
            "source": source,
            "ticket_id": t["id"],
            "to_emails": [],
            "from_email": None,
            "cc_emails": [],
            "bcc_emails": [],
            "created_at": now,
            "updated_at": now,
            "attachments": attachments or [],
        }
        self.conversations.setdefault(t["id"], []).append(c)
        self._touch(t)
        return c

    def _stalled(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> float | None:
        with self.lock:
            if time.monotonic() >= self._stall_until:
                return None
            hang, apply = self._stall_hang, self._stall_apply
            fault: Json = {"at": time.time(), "method": method, "path": urlsplit(target).path}
            if not apply:
                fault["fault"] = "stalled"
                self.faults.append(fault)
                return hang
        reply = self._dispatch(method, target, headers, body)
        with self.lock:
            fault.update(fault="stalled after applying", status=reply.status)
            self.faults.append(fault)
        return hang

    def _auth(self, headers: dict[str, str]) -> int:
        h = headers.get("authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, _pw = base64.b64decode(h[6:]).decode().partition(":")
            except ValueError:
                user = ""
            if hmac.compare_digest(user.encode(), self.api_key.encode()):
                return API_AGENT_ID
        raise _Error(
            401,
            {
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            },
        )

    def _spend(self) -> tuple[dict[str, str], bool]:
        if self._limit is None:
            return {}, False
        allowed, window = self._limit
        now = time.time()
        start = now - now % window
        if self._window[0] != start:
            self._window = (start, 0)
        used = self._window[1]
        refused = used >= allowed
        if refused:
            self.limited += 1
        else:
            self._window = (start, used + 1)
        per_minute = round(allowed * 60 / window)
        left = allowed - self._window[1]
        hdrs = {
            "X-RateLimit-Total": str(per_minute),
            "X-RateLimit-Remaining": str(max(left, 0)),
            "X-RateLimit-Used-CurrentRequest": "0" if refused else "1",
        }
        if refused:
            tick = window / 60
            hdrs["Retry-After"] = f"{math.ceil((start + window - now) / tick - 1e-9) * tick:g}"
        return hdrs, refused

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
            if parts.path.startswith("/s3/"):
                return self._s3(parts.path[4:], query)
            if time.monotonic() < self._fail_until:
                status = self._fail_status
                self.faults.append(
                    {"at": time.time(), "method": method, "path": parts.path, "fault": status}
                )
                return _Reply(status, None, {"Retry-After": "1"} if status == 429 else {}, b"")
            try:
                self._auth(headers)
            except _Error as exc:
                return exc.reply
            limits, refused = self._spend()
            if refused:
                return _Reply(
                    429, {"message": "You have exceeded the limit of requests per minute"}, limits
                )
            try:
                reply = self._route(method, parts.path, query, headers, body)
            except _Error as exc:
                reply = exc.reply
            reply.headers.update(limits)
            return reply

    def _s3(self, key: str, q: dict[str, str]) -> _Reply:
        got = self.files.get(key)
        expires = q.get("Expires", "")
        sig = hmac.new(self.api_key.encode(), f"{key}.{expires}".encode(), "sha256").hexdigest()
        xml = {"Content-Type": "application/xml"}
        if got is None or not hmac.compare_digest(sig, q.get("Signature", "")):
            return _Reply(403, None, xml, b"<Error>AccessDenied</Error>")
        if not expires.isdigit() or time.time() > int(expires):
            return _Reply(403, None, xml, b"<Error>Request has expired</Error>")
        return _Reply(200, None, {"Content-Type": got[1]}, got[0])

    def _json(self, headers: dict[str, str], body: bytes) -> Json:
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Error(
                415,
                {
                    "code": "invalid_content_type",
                    "message": "Content-Type header should have application/json",
                },
            )
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _Error(
                400, {"code": "invalid_json", "message": "Request body has invalid json format"}
            ) from exc
        if not isinstance(data, dict):
            raise _Error(
                400, {"code": "invalid_json", "message": "Request body has invalid json format"}
            )
        return data

    def _form(self, headers: dict[str, str], body: bytes) -> tuple[Json, list[Json]]:
        """A multipart body's fields and its `attachments[]` files."""
        ctype = headers.get("content-type", "")
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        if not msg.is_multipart():
            raise _invalid(("body", "Invalid multipart body", "invalid_value"))
        fields: Json = {}
        files: list[Json] = []
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            if part.get_filename() is not None:
                if name != "attachments[]":
                    raise _invalid(
                        (str(name), "Unexpected/invalid field in request", "invalid_field")
                    )
                files.append(
                    {
                        "name": part.get_filename(),
                        "content_type": part.get_content_type(),
                        "data": payload,
                    }
                )
            else:
                fields[str(name)] = payload.decode()
        for k in ("private", "incoming"):
            if k in fields:
                if fields[k] not in ("true", "false"):
                    raise _invalid(
                        (
                            k,
                            "Value set is of type String.It should be a/an Boolean",
                            "datatype_mismatch",
                        )
                    )
                fields[k] = fields[k] == "true"
        if "user_id" in fields:
            if not str(fields["user_id"]).isdigit():
                raise _invalid(
                    (
                        "user_id",
                        "Value set is of type String.It should be a/an Integer",
                        "datatype_mismatch",
                    )
                )
            fields["user_id"] = int(fields["user_id"])
        return fields, files

    def _route(
        self, method: str, path: str, q: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        seg = path.strip("/").split("/")
        if seg[:2] != ["api", "v2"]:
            raise _Error(404, {"code": "not_found", "message": "not found"})
        seg = seg[2:]
        if seg == ["agents", "me"] and method == "GET":
            return _Reply(200, self._agent(API_AGENT_ID))
        if len(seg) == 2 and seg[0] == "agents" and method == "GET":
            if not seg[1].isdigit() or int(seg[1]) not in self.agents:
                raise _Error(404, {})
            return _Reply(200, self._agent(int(seg[1])))
        if seg == ["contacts"] and method == "POST":
            return self._create_contact(self._json(headers, body))
        if seg == ["contacts"] and method == "GET":
            found = [
                c
                for c in self.contacts.values()
                if "unique_external_id" not in q
                or c["unique_external_id"] == q["unique_external_id"]
            ]
            return _Reply(200, found)
        if len(seg) == 2 and seg[0] == "contacts" and method == "PUT":
            if not seg[1].isdigit() or int(seg[1]) not in self.contacts:
                raise _Error(404, {})
            return self._update_contact(self.contacts[int(seg[1])], self._json(headers, body))
        if seg == ["tickets"] and method == "POST":
            return self._create_ticket(self._json(headers, body))
        if seg == ["tickets"] and method == "GET":
            return self._list_tickets(q)
        if len(seg) >= 2 and seg[0] == "tickets":
            if not seg[1].isdigit() or int(seg[1]) not in self.tickets:
                raise _Error(404, {})
            t = self.tickets[int(seg[1])]
            if len(seg) == 2 and method == "GET":
                return _Reply(200, t)
            if len(seg) == 2 and method == "PUT":
                return self._update_ticket(t, self._json(headers, body))
            if seg[2:] == ["notes"] and method == "POST":
                return self._note(t, headers, body)
            if seg[2:] == ["conversations"] and method == "GET":
                return self._list_conversations(t, q)
        raise _Error(404, {"code": "not_found", "message": "not found"})

    def _agent(self, aid: int) -> Json:
        a = self.agents[aid]
        return {
            "id": aid,
            "available": True,
            "occasional": False,
            "signature": None,
            "ticket_scope": 1,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "contact": {"name": a["name"], "email": a["email"], "active": True},
        }

    def _create_contact(self, data: Json) -> _Reply:
        allowed = {
            "name",
            "email",
            "unique_external_id",
            "phone",
            "mobile",
            "avatar",
            "description",
        }
        extra = set(data) - allowed
        if extra:
            raise _invalid(
                *(
                    (k, "Unexpected/invalid field in request", "invalid_field")
                    for k in sorted(extra)
                )
            )
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise _invalid(("name", "It should be a/an String", "missing_field"))
        ext, email = data.get("unique_external_id"), data.get("email")
        if not (ext or email or data.get("phone") or data.get("mobile")):
            raise _invalid(
                (
                    "requester_id",
                    "Please fill at least 1 of email, mobile, phone, twitter_id, "
                    "unique_external_id fields",
                    "missing_field",
                )
            )
        if ext is not None and (not isinstance(ext, str) or len(ext) > 255):
            raise _invalid(("unique_external_id", "It should be a/an String", "datatype_mismatch"))
        for c in self.contacts.values():
            if ext is not None and c["unique_external_id"] == ext:
                raise _Error(
                    409,
                    {
                        "description": "Validation failed",
                        "errors": [
                            {
                                "field": "unique_external_id",
                                "additional_info": {"user_id": c["id"]},
                                "message": "It should be a unique value",
                                "code": "duplicate_value",
                            }
                        ],
                    },
                )
        if email is not None:
            if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise _invalid(
                    ("email", "It should be in the 'valid email address' format", "invalid_value")
                )
            holders = [
                c["id"]
                for c in self.contacts.values()
                if (c["email"] or "").lower() == email.lower()
            ]
            holders += [a for a, v in self.agents.items() if v["email"].lower() == email.lower()]
            if holders:
                raise _Error(
                    409,
                    {
                        "description": "Validation failed",
                        "errors": [
                            {
                                "field": "email",
                                "additional_info": {"user_id": holders[0]},
                                "message": "It should be a unique value",
                                "code": "duplicate_value",
                            }
                        ],
                    },
                )
        now = _iso(time.time())
        cid = self._id()
        c = {
            "id": cid,
            "name": data["name"],
            "email": email,
            "unique_external_id": ext,
            "phone": data.get("phone"),
            "mobile": data.get("mobile"),
            "active": False,
            "created_at": now,
            "updated_at": now,
        }
        self.contacts[cid] = c
        return _Reply(201, c)

    def _update_contact(self, c: Json, data: Json) -> _Reply:
        extra = set(data) - {"name", "email", "phone", "mobile", "description"}
        if extra:
            raise _invalid(
                *(
                    (k, "Unexpected/invalid field in request", "invalid_field")
                    for k in sorted(extra)
                )
            )
        if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
            raise _invalid(("name", "It should be a/an String", "missing_field"))
        c.update(data)
        c["updated_at"] = _iso(time.time())
        return _Reply(200, c)

    def _check_ticket_fields(self, data: Json, creating: bool) -> None:
        allowed = {
            "subject",
            "description",
            "requester_id",
            "email",
            "unique_external_id",
            "status",
            "priority",
            "source",
            "tags",
            "responder_id",
            "type",
            "group_id",
            "custom_fields",
        }
        extra = set(data) - allowed
        if extra:
            raise _invalid(
                *(
                    (k, "Unexpected/invalid field in request", "invalid_field")
                    for k in sorted(extra)
                )
            )
        problems = []
        if creating:
            for k in ("subject", "description"):
                if not isinstance(data.get(k), str) or not data[k].strip():
                    problems.append((k, "It should be a/an String", "missing_field"))
            if not any(k in data for k in ("requester_id", "email", "unique_external_id")):
                problems.append(
                    (
                        "requester_id",
                        "Please fill at least 1 of email, phone, requester_id, "
                        "unique_external_id fields",
                        "missing_field",
                    )
                )
        if "requester_id" in data and data["requester_id"] not in self.contacts:
            problems.append(
                (
                    "requester_id",
                    "There is no contact matching the given requester_id",
                    "invalid_value",
                )
            )
        if "status" in data and data["status"] not in (2, 3, 4, 5):
            problems.append(
                ("status", "It should be one of these values: '2,3,4,5'", "invalid_value")
            )
        if "priority" in data and data["priority"] not in (1, 2, 3, 4):
            problems.append(
                ("priority", "It should be one of these values: '1,2,3,4'", "invalid_value")
            )
        if "source" in data and data["source"] not in SOURCES:
            problems.append(
                ("source", "It should be one of these values: '1,2,3,5,6,7,9,10'", "invalid_value")
            )
        tags = data.get("tags")
        if tags is not None and (
            not isinstance(tags, list)
            or not all(isinstance(x, str) and 0 < len(x) <= 32 for x in tags)
        ):
            problems.append(
                (
                    "tags",
                    "It should be a/an Array of Strings of at most 32 characters",
                    "invalid_value",
                )
            )
        if problems:
            raise _invalid(*problems)

    def _create_ticket(self, data: Json) -> _Reply:
        self._check_ticket_fields(data, creating=True)
        now = _iso(time.time())
        tid = self._id()
        t = {
            "id": tid,
            "subject": data["subject"],
            "description": data["description"],
            "description_text": _text(data["description"]),
            "requester_id": data["requester_id"],
            "responder_id": None,
            "group_id": None,
            "status": data.get("status", 2),
            "priority": data.get("priority", 1),
            "source": data.get("source", 2),
            "tags": list(data.get("tags") or []),
            "type": None,
            "custom_fields": {},
            "created_at": now,
            "updated_at": now,
        }
        self.tickets[tid] = t
        self.conversations[tid] = []
        return _Reply(201, t)

    def _update_ticket(self, t: Json, data: Json) -> _Reply:
        self._check_ticket_fields(data, creating=False)
        if (
            data.get("status") in (4, 5)
            and self.required_on_resolve
            and not (t.get("custom_fields") or {}).get(self.required_on_resolve)
        ):
            raise _invalid((self.required_on_resolve, "It should be a/an String", "missing_field"))
        for k, v in data.items():
            t[k] = list(v) if k == "tags" else v
        self._touch(t)
        return _Reply(200, t)

    def _note(self, t: Json, headers: dict[str, str], body: bytes) -> _Reply:
        if headers.get("content-type", "").startswith("multipart/form-data"):
            data, files = self._form(headers, body)
        else:
            data, files = self._json(headers, body), []
        extra = set(data) - {"body", "private", "incoming", "user_id", "notify_emails"}
        if extra:
            raise _invalid(
                *(
                    (k, "Unexpected/invalid field in request", "invalid_field")
                    for k in sorted(extra)
                )
            )
        if not isinstance(data.get("body"), str) or not data["body"].strip():
            raise _invalid(("body", "It should be a/an String", "missing_field"))
        for k in ("private", "incoming"):
            if k in data and not isinstance(data[k], bool):
                raise _invalid((k, "It should be a/an Boolean", "datatype_mismatch"))
        user = data.get("user_id", API_AGENT_ID)
        if not isinstance(user, int) or (user not in self.agents and user not in self.contacts):
            raise _invalid(
                (
                    "user_id",
                    "There is no contact or agent matching the given user_id",
                    "invalid_value",
                )
            )
        if sum(len(f["data"]) for f in files) > 20 * 1024 * 1024:
            raise _invalid(
                (
                    "attachments",
                    "The cumulative size of attachments cannot exceed 20MB",
                    "invalid_size",
                )
            )
        atts = [self._file(str(f["name"]), str(f["content_type"]), f["data"]) for f in files]
        c = self._add(
            t,
            user,
            data["body"],
            private=data.get("private", True),
            incoming=data.get("incoming", False),
            source=2,
            attachments=atts,
        )
        return _Reply(201, c)

    def _page(self, q: dict[str, str]) -> tuple[int, int]:
        try:
            page, per = int(q.get("page", "1")), int(q.get("per_page", "30"))
        except ValueError as exc:
            raise _invalid(
                ("page", "It should be a/an Positive Integer", "datatype_mismatch")
            ) from exc
        if page < 1 or not 1 <= per <= 100:
            raise _invalid(
                (
                    "per_page",
                    "It should be a Positive Integer less than or equal to 100",
                    "invalid_value",
                )
            )
        return page, per

    def _list_conversations(self, t: Json, q: dict[str, str]) -> _Reply:
        page, per = self._page(q)
        rows = self.conversations.get(t["id"], [])
        return _Reply(200, [self._fresh(c) for c in rows[(page - 1) * per : page * per]])

    def _list_tickets(self, q: dict[str, str]) -> _Reply:
        page, per = self._page(q)
        rows = list(self.tickets.values())
        if "updated_since" in q:
            try:
                since = datetime.fromisoformat(
                    q["updated_since"].replace("Z", "+00:00")
                ).timestamp()
            except ValueError as exc:
                raise _invalid(
                    (
                        "updated_since",
                        "It should be in the 'combined date and time ISO8601' format",
                        "invalid_value",
                    )
                ) from exc
            rows = [
                r
                for r in rows
                if datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00")).timestamp()
                >= since
            ]
        order = q.get("order_by", "created_at")
        if order not in ("created_at", "due_by", "updated_at", "status"):
            raise _invalid(
                (
                    "order_by",
                    "It should be one of these values: 'created_at,due_by,updated_at,status'",
                    "invalid_value",
                )
            )
        direction = q.get("order_type", "desc")
        if direction not in ("asc", "desc"):
            raise _invalid(
                ("order_type", "It should be one of these values: 'asc,desc'", "invalid_value")
            )
        rows.sort(key=lambda r: (r.get(order) or "", r["id"]), reverse=direction == "desc")
        return _Reply(200, rows[(page - 1) * per : page * per])
