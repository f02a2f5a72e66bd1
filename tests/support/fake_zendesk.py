"""A local fake of the Zendesk Support API, faithful to its documentation where the bridge
touches it, for adapter and end-to-end tests.

It checks authentication (basic `email/token:token`, fixed bearer tokens, and bearer tokens
it issued from `POST /oauth/tokens`, which expire on its own clock) and request shapes, and
grants OAuth tokens as Zendesk documents: client credentials; an authorization code (from
`approve`, standing in for an admin's browser on `/oauth/authorizations/new`) that is good
once, for 120 s, with the redirect URL it was issued for; and refresh tokens that rotate
(a refresh deletes the previous access and refresh tokens, and a used, expired or revoked
refresh token is refused with 400 `invalid_grant`). It
answers with Zendesk's status codes and bodies: integer ids, an `audit` with events on
ticket creation and updates, cursor pagination on comments, errors as
`{"error": …, "description": …}`. It honours `Idempotency-Key` on ticket creation and
`safe_update` on ticket updates, refuses a solve without an assignee and an assignee
outside the ticket's group (422), keeps webhooks' `status` and `subscriptions`, can be
told to fail the next requests (`fail_next`, optionally echoing the request as a debugging
proxy would), to answer every request with an error for a while (`fail_for`) or to let
every request time out for a while (`stall_for`, optionally applying writes before going
silent, as an overloaded server may), to act just before a request is handled
(`before_next`), records every request (`requests`) and every injected fault (`faults`),
and lets a test act as an admin or agent (`add_group`, `set_group`, `agent_comment`,
`assign`, `solve`). Like Zendesk, it runs the active triggers on every ticket creation and
update, as the user who made it: a trigger whose conditions hold calls its webhook, which
the fake records (`fired`) and, when a test sets `deliver` (`post_webhooks_to`), sends,
signed, on a thread of its own. It evaluates the conditions `update_type`, `current_tags`
and `current_user` (a user id); a condition on any other field never holds here. It can
enforce the account's requests-per-minute limit in scaled time (`rate_limit`, off by
default), answering 429 with Retry-After and the rate-limit headers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bridge.helpdesks.zendesk.webhook import sign

Json = dict[str, Any]
API_USER_ID = 1000
REDIRECT_URI = "https://bridge.example.com/zendesk/oauth"
#: Lifetimes Zendesk gives when a grant names none (OAuth clients made since 30 April 2026).
ACCESS_TTL, REFRESH_TTL = 1800, 2_592_000
#: Zendesk's system user, the author of comments that triggers and automations add.
SYSTEM_USER_ID = -1


@dataclass
class Recorded:
    """One request the fake received."""

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
    def __init__(self, status: int, error: str, description: str = "", **extra: Any) -> None:
        body: Json = {"error": error}
        if description:
            body["description"] = description
        body.update(extra)
        self.reply = _Reply(status, body)


def _invalid(field_name: str, description: str) -> _Error:
    return _Error(
        422,
        "RecordInvalid",
        "Record validation errors",
        details={field_name: [{"description": description, "error": "InvalidValue"}]},
    )


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout the test injected) is not news


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeZendesk:
    """A Zendesk account on 127.0.0.1; `url` is its base URL once started."""

    def __init__(
        self,
        *,
        email: str = "bridge@example.com",
        api_token: str = "api-token-1234",
        client_id: str = "bridge_client",
        client_secret: str = "client-secret-5678",
    ) -> None:
        self.email, self.api_token = email, api_token
        self.client_id, self.client_secret = client_id, client_secret
        self.bearer_tokens: set[str] = set()
        self.issued: dict[str, float] = {}  # OAuth token -> expiry on self.clock()
        # The OAuth client's registered redirect URLs, its authorization codes (code ->
        # redirect_uri, scope, expires) and refresh tokens (token -> access, scope, expires).
        self.redirect_uris = [REDIRECT_URI]
        self.codes: dict[str, Json] = {}
        self.refresh_tokens: dict[str, Json] = {}
        self.skew = 0.0
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.users: dict[int, Json] = {}
        # Users the search index has not caught up with yet (Zendesk's search lags writes).
        self.unindexed: set[int] = set()
        self.identities: dict[int, list[Json]] = {}  # user id -> its secondary e-mails
        self.tickets: dict[int, Json] = {}
        self._comments: dict[int, list[Json]] = {}
        self.idempotency: dict[str, tuple[str, Json, float]] = {}
        self.uploads: dict[str, list[Json]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.attachments: dict[int, Json] = {}  # by id; file key -> id in _file_ids
        self._file_ids: dict[str, int] = {}
        # The account setting "require sign-in to download attachments": content URLs then
        # want credentials and answer with a redirect to a short-lived download URL, on
        # another origin (localhost instead of 127.0.0.1), as Zendesk's storage is.
        self.private_attachments = False
        self._downloads: dict[str, tuple[str, float]] = {}
        self.webhooks: dict[str, Json] = {}
        self.signing_secrets: dict[str, str] = {}
        self.triggers: dict[int, Json] = {}
        # The ids of the tickets whose update made a trigger call a webhook, one per call.
        self.fired: list[int] = []
        # Given the headers and body of each webhook call, on a thread (Zendesk calls
        # webhooks asynchronously, after the update is answered).
        self.deliver: Callable[[dict[str, str], bytes], None] | None = None
        self.groups: dict[int, Json] = {}
        self.members: dict[int, set[int]] = {}  # group id -> its agents' ids
        self._failures: list[tuple[int, float | None, bool]] = []
        self._before: list[tuple[str, str, Callable[[], None]]] = []
        # Timed fault windows on time.monotonic(): see fail_for and stall_for.
        self._fail_until = 0.0
        self._fail_status = 503
        self._fail_retry_after: float | None = None
        self._stall_until = 0.0
        self._stall_hang = 0.0
        self._stall_apply = False
        # The account's rate limit (see rate_limit): requests per window, the window's
        # length, the current window's start and count, and the requests answered 429.
        self._limit: tuple[int, float, bool] | None = None
        self._window = (0.0, 0)
        self.limited = 0
        self._stopping = threading.Event()
        self.faults: list[Json] = []  # one entry per request a fault window answered
        self._next_ticket = 1
        self._next_user = 2000
        self._next_event = 10_000_000
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.users[API_USER_ID] = {
            "id": API_USER_ID,
            "name": "Bridge API",
            "email": email,
            "role": "admin",
            "external_id": None,
        }

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeZendesk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                hang = fake._stalled(self.command, self.path, headers, body)
                if hang is not None:
                    # No lock is held while hanging: other requests and stop() go on. The
                    # caller has given up by the end; close without an answer.
                    fake._stopping.wait(hang)
                    self.close_connection = True
                    return
                reply = fake._dispatch(self.command, self.path, headers, body)
                raw = reply.raw
                if raw is None:
                    raw = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                if reply.body is not None and reply.raw is None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._stopping.clear()
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # stop() does not wait for handler threads (a client's idle keep-alive connection
        # or a stalled request would hold it up); they are daemons.
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases stalled requests at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- test controls ------------------------------------------------------------------
    def clock(self) -> float:
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (OAuth token expiry) forward."""
        self.skew += seconds

    def approve(self, authorize_url: str, *, allow: bool = True) -> str:
        """An admin opens the bridge's authorization page and allows (or denies) access;
        returns where Zendesk sends the browser. Raises ValueError for a page Zendesk would
        not show (an unknown client or redirect URL, a response_type other than code)."""
        parts = urlsplit(authorize_url)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path != "/oauth/authorizations/new" or f"{parts.scheme}://{parts.netloc}" != (
            self.url
        ):
            raise ValueError(f"not this account's authorization page: {authorize_url}")
        if q.get("response_type") != "code" or q.get("client_id") != self.client_id:
            raise ValueError("invalid_request: response_type must be code, client_id known")
        redirect = q.get("redirect_uri", self.redirect_uris[0])
        if redirect not in self.redirect_uris:
            raise ValueError(f"redirect_uri is not registered for the client: {redirect}")
        answer: dict[str, str] = {}
        if allow:
            code = secrets.token_urlsafe(24)
            with self.lock:
                self.codes[code] = {
                    "redirect_uri": redirect,
                    "scope": q.get("scope", "read"),
                    "expires": self.clock() + 120,
                }
            answer["code"] = code
        else:
            answer.update(error="access_denied", error_description="The end-user denied")
        if "state" in q:
            answer["state"] = q["state"]
        return f"{redirect}?{urlencode(answer)}"

    def revoke_grants(self) -> None:
        """An admin revokes the client's tokens in Admin Center: access and refresh tokens."""
        with self.lock:
            for entry in self.refresh_tokens.values():
                self.issued.pop(entry["access"], None)
            self.refresh_tokens.clear()

    def fail_next(
        self, n: int, status: int, retry_after: float | None = None, *, echo: bool = False
    ) -> None:
        """Answer the next `n` requests with `status` (429/503…), with Retry-After if given.

        `echo`: the answer's body repeats the request's headers and body, as a debugging
        proxy or a misconfigured gateway in front of Zendesk may.
        """
        with self.lock:
            self._failures += [(status, retry_after, echo)] * n

    def before_next(self, method: str, path: str, action: Callable[[], None]) -> None:
        """Run `action` (e.g. an agent's edit) just before the next `method` request to
        `path` is handled: what happened between the caller's read and its write."""
        with self.lock:
            self._before.append((method, path, action))

    def fail_for(self, seconds: float, status: int = 503, retry_after: float | None = None) -> None:
        """Answer every request with `status` for the next `seconds` (an outage), with
        Retry-After if given. Nothing is applied."""
        with self.lock:
            self._fail_status, self._fail_retry_after = status, retry_after
            self._fail_until = time.monotonic() + seconds

    def stall_for(self, seconds: float, *, hang: float = 5.0, apply: bool = False) -> None:
        """For the next `seconds`, every request hangs for `hang` seconds (longer than the
        caller's timeout), then the connection closes without an answer.

        `apply=False`: nothing is applied (the request died before Zendesk handled it).
        `apply=True`: the request is handled first, then its answer is lost (Zendesk
        applied it but answered too late), so the caller cannot tell what happened.
        """
        with self.lock:
            self._stall_hang, self._stall_apply = hang, apply
            self._stall_until = time.monotonic() + seconds

    def rate_limit(
        self, requests: int, window: float = 60.0, *, reset_on_all: bool = False
    ) -> None:
        """Allow `requests` per `window` seconds, every later request of the window answered
        429 (text/plain) with Retry-After, as Zendesk limits an account per minute.

        A `window` under 60 s is a Zendesk minute scaled down (benchmarks): every answer
        announces the per-minute equivalent in X-Rate-Limit, and the times in Retry-After
        and ratelimit-reset are real seconds, rounded up to a scaled second as Zendesk
        rounds them to whole seconds. Windows start at multiples of `window` on the clock.
        Zendesk sends ratelimit-limit / -remaining / -reset on list endpoints only;
        `reset_on_all` sends them on every answer (a client's fallback for a missing reset,
        a real minute, would otherwise be unscaled).
        """
        with self.lock:
            self._limit = (requests, window, reset_on_all)
            self._window = (0.0, 0)
            self.limited = 0

    def add_agent(self, name: str, email: str = "", role: str = "agent") -> int:
        with self.lock:
            uid = self._next_user
            self._next_user += 1
            self.users[uid] = {
                "id": uid,
                "name": name,
                "email": email or f"{uid}@agents.test",
                "role": role,
                "external_id": None,
            }
            return uid

    def comments(self, ticket_id: int | str) -> list[Json]:
        return list(self._comments.get(int(ticket_id), []))

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def agent_comment(
        self,
        ticket_id: int | str,
        agent_id: int,
        body: str,
        public: bool = True,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        inline_images: Sequence[tuple[str, str, bytes]] = (),
    ) -> int:
        """An agent (or any user) comments in the agent UI; returns the comment id.

        `inline_images` are pasted into the text: Zendesk lists them among the comment's
        attachments (`inline: true`) only when a read asks with `include_inline_images`.
        """
        with self.lock:
            atts = [self._store_file(name, ctype, data) for name, ctype, data in attachments]
            for name, ctype, data in inline_images:
                atts.append(self._store_file(name, ctype, data))
                atts[-1]["inline"] = True
            t = self.tickets[int(ticket_id)]
            events = [self._add_comment(t, {"body": body, "public": public}, agent_id, atts)]
            self._touch(t, agent_id, events)
            return int(events[0]["id"])

    def add_group(self, name: str, members: Sequence[int] = ()) -> int:
        """A group of agents (Admin Center > People > Groups); returns its id."""
        with self.lock:
            gid = max(self.groups, default=300) + 1
            self.groups[gid] = {"id": gid, "name": name, "default": False, "deleted": False}
            self.members[gid] = set(members)
            return gid

    def set_group(self, ticket_id: int | str, group_id: int | None) -> None:
        """An agent or a routing rule puts the ticket in a group."""
        with self.lock:
            t = self.tickets[int(ticket_id)]
            if group_id is not None and t.get("assignee_id") not in (
                None,
                *self.members[group_id],
            ):
                raise ValueError("Zendesk refuses an assignee outside the ticket's group")
            t["group_id"] = group_id
            self._touch(t, API_USER_ID, [self._change("group_id", group_id)])

    def scan(self, comment_id: int, result: str, name: str | None = None) -> None:
        """Set the malware scan result of a comment's attachments (those called `name`):
        "not_scanned" (the scan has not run yet), "malware_found", "malware_not_found" or
        "failed_to_scan"."""
        if result not in ("not_scanned", "malware_found", "malware_not_found", "failed_to_scan"):
            raise ValueError(f"not a scan result Zendesk documents: {result!r}")
        with self.lock:
            for comments in self._comments.values():
                for c in comments:
                    for a in c["attachments"] if c["id"] == comment_id else []:
                        if name is None or a["file_name"] == name:
                            a["malware_scan_result"] = result

    def system_comment(self, ticket_id: int | str, body: str, public: bool = True) -> int:
        """A trigger adds a comment: Zendesk writes it as its system user (author id -1)."""
        with self.lock:
            t = self.tickets[int(ticket_id)]
            event = self._add_comment(t, {"body": body, "public": public}, SYSTEM_USER_ID, [])
            comment = self._comments[t["id"]][-1]
            comment["via"] = {
                "channel": "rule",
                "source": {"from": {"id": 501, "title": "Notify requester"}, "rel": "trigger"},
            }
            self._touch(t, SYSTEM_USER_ID, [event])
            return int(event["id"])

    def assign(self, ticket_id: int | str, agent_id: int) -> None:
        with self.lock:
            t = self.tickets[int(ticket_id)]
            if t.get("group_id") is not None and agent_id not in self.members[t["group_id"]]:
                raise ValueError("Zendesk refuses an assignee outside the ticket's group")
            t["assignee_id"] = agent_id
            self._touch(t, agent_id, [self._change("assignee_id", agent_id)])

    def solve(self, ticket_id: int | str, status: str = "solved") -> None:
        with self.lock:
            t = self.tickets[int(ticket_id)]
            if not t.get("assignee_id"):
                raise ValueError("Zendesk refuses to solve a ticket without an assignee")
            t["status"] = status
            self._touch(t, t["assignee_id"], [self._change("status", status)])

    def webhook_request(
        self, ticket_id: int | str, *, at: float | None = None, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the trigger's webhook call for a ticket, signed as Zendesk does."""
        hook = next(iter(self.webhooks.values()), None)
        if hook is not None and hook["status"] != "active":
            raise ValueError("Zendesk sends nothing through an inactive webhook")
        body = json.dumps({"ticket_id": str(ticket_id)}).encode()
        wid = next(iter(self.webhooks), "01FAKE")
        if secret is None:
            secret = self.signing_secrets.get(wid, "")
        return self._signed(wid, body, at=at, secret=secret), body

    def post_webhooks_to(self, url: str) -> None:
        """Send the webhook calls triggers make to `url` (a test's bridge), not to the
        endpoint the webhook names; failures are left to the test to notice."""

        def post(headers: dict[str, str], body: bytes) -> None:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            # A refused call is the bridge's answer, for the test's own checks to see.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).close()

        self.deliver = post

    # -- internals ----------------------------------------------------------------------
    def _stalled(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> float | None:
        """Seconds this request must hang (a stall window is open), else None. When the
        window applies requests, this one is handled (and recorded) before it hangs."""
        with self.lock:
            if time.monotonic() >= self._stall_until:
                return None
            hang, apply = self._stall_hang, self._stall_apply
            path = urlsplit(target).path
            fault: Json = {"at": time.time(), "method": method, "path": path}
            if not apply:
                self.requests.append(Recorded(method, path, {}, headers, body))
                fault["fault"] = "stalled"
                self.faults.append(fault)
                return hang
        # Handled as usual (under the lock, inside _dispatch), but the answer is dropped.
        reply = self._dispatch(method, target, headers, body)
        with self.lock:
            fault.update(fault="stalled after applying", status=reply.status)
            if method in ("POST", "PUT", "PATCH", "DELETE") and isinstance(reply.body, dict):
                fault["reply"] = reply.body
            self.faults.append(fault)
        return hang

    def _event_id(self) -> int:
        self._next_event += 1
        return self._next_event

    def _change(self, field_name: str, value: Any) -> Json:
        return {"id": self._event_id(), "type": "Change", "field_name": field_name, "value": value}

    def _store_file(self, name: str, ctype: str, data: bytes) -> Json:
        key = secrets.token_urlsafe(12)
        self.files[key] = (data, ctype)
        url = f"{self.url}/attachments/token/{key}/?{urlencode({'name': name})}"
        aid = self._event_id()
        self._file_ids[key] = aid
        self.attachments[aid] = {
            "id": aid,
            "file_name": name,
            "content_type": ctype,
            "content_url": url,
            "mapped_content_url": url,
            "size": len(data),
            "inline": False,
            "deleted": False,
            "malware_access_override": False,
            # Scanned at once here; see `scan` for a scan that is late or finds malware.
            "malware_scan_result": "malware_not_found",
            "thumbnails": [],
            "url": f"{self.url}/api/v2/attachments/{aid}",
        }
        return self.attachments[aid]

    def _add_comment(self, t: Json, c: Json, author_id: int, atts: list[Json]) -> Json:
        cid = self._event_id()
        body = str(c["body"])
        comment = {
            "id": cid,
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "html_body": f"<p>{body}</p>",
            "plain_body": body,
            "public": bool(c.get("public", True)),
            "attachments": atts,
            "audit_id": cid,
            "created_at": _iso(self.clock()),
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {}, "custom": {}},
        }
        self._comments.setdefault(t["id"], []).append(comment)
        return {
            "id": cid,
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "public": comment["public"],
            "attachments": atts,
        }

    def _touch(
        self, t: Json, author_id: int, events: list[Json], update_type: str = "Change"
    ) -> Json:
        """Record an update (`update_type` "Create" or "Change") made by `author_id`, the
        ticket's updater, and run the triggers on it; returns its audit."""
        self._seq += 1
        t["_seq"] = self._seq
        t["updated_at"] = _iso(self.clock())
        t["_updated"] = self.clock()
        self._run_triggers(t, author_id, update_type)
        return {
            "id": self._event_id(),
            "ticket_id": t["id"],
            "author_id": author_id,
            "created_at": t["updated_at"],
            "events": events,
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        }

    def _run_triggers(self, t: Json, updater: int, update_type: str) -> None:
        """Every active trigger, in order, whose conditions hold for this update calls the
        webhooks its actions name (active ones only)."""
        for trig in sorted(self.triggers.values(), key=lambda x: x["id"]):
            conditions = trig.get("conditions") or {}
            every = conditions.get("all") or []
            some = conditions.get("any") or []
            holds = [self._holds(c, t, updater, update_type) for c in every]
            if not trig.get("active", True) or not all(holds):
                continue
            if some and not any(self._holds(c, t, updater, update_type) for c in some):
                continue
            for action in trig["actions"]:
                if action.get("field") != "notification_webhook":
                    continue
                wid, template = action["value"]
                hook = self.webhooks.get(wid)
                if hook is None or hook["status"] != "active":
                    continue
                body = str(template).replace("{{ticket.id}}", str(t["id"])).encode()
                self.fired.append(t["id"])
                if self.deliver is not None:
                    headers = self._signed(wid, body, secret=self.signing_secrets[wid])
                    threading.Thread(target=self.deliver, args=(headers, body), daemon=True).start()

    @staticmethod
    def _holds(c: Json, t: Json, updater: int, update_type: str) -> bool:
        """Whether a trigger condition holds for an update (the fields the fake knows)."""
        field_name, op, value = c.get("field"), c.get("operator"), c.get("value")
        if field_name == "update_type":
            return (update_type == value) == (op == "is")
        if field_name == "current_tags":
            # The value lists tags separated by spaces: "includes" wants one of them.
            found = bool(set(str(value).split()) & set(t["tags"]))
            return found == (op == "includes")
        if field_name == "current_user":
            return (str(updater) == str(value)) == (op == "is")
        return False

    def _signed(
        self, wid: str, body: bytes, *, secret: str, at: float | None = None
    ) -> dict[str, str]:
        """The headers of a webhook call, signed as Zendesk signs them."""
        stamp = _iso(self.clock() if at is None else at)
        return {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Id": wid,
            "X-Zendesk-Webhook-Invocation-Id": str(secrets.randbelow(10**12)),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
        }

    @staticmethod
    def _public(t: Json) -> Json:
        return {k: v for k, v in t.items() if not k.startswith("_")}

    def _auth(self, headers: dict[str, str]) -> int:
        """The authenticated user's id; raises 401 as Zendesk does."""
        h = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            except ValueError:
                user = pw = ""
            if user == f"{self.email}/token" and pw == self.api_token:
                return API_USER_ID
        elif h.startswith("Bearer "):
            tok = h[7:]
            if tok in self.bearer_tokens:
                return API_USER_ID
            if tok in self.issued and self.issued[tok] > self.clock():
                return API_USER_ID
        raise _Error(401, "Couldn't authenticate you")

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
            if time.monotonic() < self._fail_until:
                status = self._fail_status
                self.faults.append(
                    {"at": time.time(), "method": method, "path": parts.path, "fault": status}
                )
                ra = self._fail_retry_after
                hdrs = {"Retry-After": f"{ra:g}"} if ra is not None else {}
                text = "Rate limit exceeded" if status == 429 else "Service Unavailable"
                return _Reply(status, None, hdrs, raw=text.encode())
            if self._failures:
                status, retry_after, echo = self._failures.pop(0)
                hdrs = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                text = "Rate limit exceeded" if status == 429 else "Service Unavailable"
                if echo:
                    seen = "\n".join(f"{k}: {v}" for k, v in headers.items())
                    text += f"\n\n{method} {target}\n{seen}\n\n{body.decode('utf-8', 'replace')}"
                return _Reply(status, None, hdrs, raw=text.encode())
            limits, refused = self._spend(method, parts.path)
            if refused:
                refusal = b"Number of allowed API requests per minute exceeded"
                return _Reply(429, None, limits, raw=refusal)
            for i, (m, prefix, action) in enumerate(self._before):
                if m == method and parts.path.startswith(prefix):
                    del self._before[i]
                    action()
                    break
            try:
                reply = self._route(method, parts.path, query, headers, body)
            except _Error as exc:
                reply = exc.reply
            reply.headers.update(limits)
            return reply

    def _spend(self, method: str, path: str) -> tuple[dict[str, str], bool]:
        """The rate-limit headers of this request's answer, and whether it is refused (429)."""
        if self._limit is None:
            return {}, False
        allowed, window, reset_on_all = self._limit
        now = time.time()
        start = now - now % window
        if self._window[0] != start:
            self._window = (start, 0)
        used = self._window[1]
        refused = used >= allowed
        if refused:
            self.limited += 1
        else:
            used += 1
            self._window = (start, used)
        # Zendesk's whole seconds, scaled: a second of a `window`-long minute.
        tick = window / 60
        reset = math.ceil((start + window - now) / tick - 1e-9) * tick
        per_minute = round(allowed * 60 / window)
        left = str(allowed - used)
        hdrs = {"X-Rate-Limit": str(per_minute), "X-Rate-Limit-Remaining": left}
        last = path.rstrip("/").removesuffix(".json").rsplit("/", 1)[-1]
        listing = method == "GET" and not last.isdigit() and last != "me"
        if listing or reset_on_all:
            hdrs["ratelimit-limit"], hdrs["ratelimit-remaining"] = str(per_minute), left
            hdrs["ratelimit-reset"] = f"{reset:g}"
        if refused:
            hdrs["Retry-After"] = f"{reset:g}"
        return hdrs, refused

    def _json_body(self, headers: dict[str, str], body: bytes) -> Json:
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise _Error(415, "UnsupportedMediaType", "Content-Type must be application/json")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _Error(400, "Unprocessable Entity", "Server could not parse JSON") from exc
        if not isinstance(data, dict):
            raise _Error(400, "Unprocessable Entity", "Server could not parse JSON")
        return data

    def _route(
        self, method: str, path: str, q: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Reply:
        seg = path.rstrip("/").removesuffix(".json").split("/")[1:]
        if path.startswith("/attachments/"):
            return self._attachment_file(seg, headers)
        if method == "POST" and path == "/oauth/tokens":
            return self._oauth(self._json_body(headers, body))
        me = self._auth(headers)
        if seg[:2] != ["api", "v2"]:
            raise _Error(404, "InvalidEndpoint", "Not found")
        r = seg[2:]
        match method, r:
            case "GET", ["users", "me"]:
                return _Reply(200, {"user": self.users[me]})
            case "GET", ["users", uid] if uid.isdigit():
                if int(uid) not in self.users:
                    raise _Error(404, "RecordNotFound", "Not found")
                return _Reply(200, {"user": self.users[int(uid)]})
            case "POST", ["users", "create_or_update"]:
                return self._create_or_update_user(self._json_body(headers, body))
            case "GET", ["users", "search"]:
                return self._search_users(q)
            case "POST", ["users", uid, "identities"] if uid.isdigit():
                return self._add_identity(int(uid), self._json_body(headers, body))
            case "POST", ["tickets"]:
                return self._create_ticket(me, headers, body)
            case "GET", ["tickets"]:
                found = [
                    self._public(t)
                    for t in self.tickets.values()
                    if "external_id" not in q or t.get("external_id") == q["external_id"]
                ]
                return _Reply(
                    200,
                    {
                        "tickets": found,
                        "next_page": None,
                        "previous_page": None,
                        "count": len(found),
                    },
                )
            case "GET", ["tickets", "show_many"]:
                return self._show_many(q)
            case "GET", ["tickets", tid]:
                t = self._ticket(tid)
                out: Json = {"ticket": self._public(t)}
                if "users" in q.get("include", ""):
                    ids = {t.get("requester_id"), t.get("assignee_id"), t.get("submitter_id")}
                    out["users"] = [self.users[i] for i in ids if i in self.users]
                return _Reply(200, out)
            case "PUT", ["tickets", tid]:
                return self._update_ticket(me, self._ticket(tid), self._json_body(headers, body))
            case "GET", ["tickets", tid, "comments"]:
                return self._list_comments(self._ticket(tid), q)
            case "GET", ["attachments", aid] if aid.isdigit():
                if int(aid) not in self.attachments:
                    raise _Error(404, "RecordNotFound", "Not found")
                return _Reply(200, {"attachment": self.attachments[int(aid)]})
            case "GET", ["account", "settings"]:
                tickets = {
                    "comments_public_by_default": True,
                    "private_attachments": self.private_attachments,
                    "rich_text_comments": True,
                }
                return _Reply(200, {"settings": {"tickets": tickets, "api": {}, "user": {}}})
            case "POST", ["uploads"]:
                return self._upload(q, headers, body)
            case "GET", ["incremental", "tickets", "cursor"]:
                return self._export(q)
            case "GET", ["webhooks"]:
                needle = q.get("filter[name_contains]", "")
                hooks = [w for w in self.webhooks.values() if needle in w["name"]]
                return _Reply(
                    200,
                    {
                        "webhooks": hooks,
                        "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
                        "links": {"next": None, "prev": None},
                    },
                )
            case "POST", ["webhooks"]:
                return self._create_webhook(me, self._json_body(headers, body))
            case "PATCH", ["webhooks", wid]:
                return self._patch_webhook(wid, self._json_body(headers, body))
            case "GET", ["webhooks", wid, "signing_secret"]:
                if wid not in self.webhooks:
                    raise _Error(404, "RecordNotFound", "Not found")
                return _Reply(
                    200,
                    {
                        "signing_secret": {
                            "algorithm": "sha256",
                            "secret": self.signing_secrets[wid],
                        }
                    },
                )
            case "GET", ["triggers", "search"]:
                found = [t for t in self.triggers.values() if q.get("query", "") in t["title"]]
                return _Reply(
                    200,
                    {
                        "triggers": found,
                        "count": len(found),
                        "next_page": None,
                        "previous_page": None,
                    },
                )
            case "POST", ["triggers"]:
                return self._save_trigger(None, self._json_body(headers, body))
            case "PUT", ["triggers", trid] if trid.isdigit():
                if int(trid) not in self.triggers:
                    raise _Error(404, "RecordNotFound", "Not found")
                return self._save_trigger(int(trid), self._json_body(headers, body))
        raise _Error(404, "InvalidEndpoint", "Not found")

    def _attachment_file(self, seg: list[str], headers: dict[str, str]) -> _Reply:
        """An attachment's content_url (/attachments/token/<key>/), and the short-lived
        download URL it redirects to on accounts with private attachments."""
        if seg[:2] == ["attachments", "download"] and len(seg) == 3:
            key, until = self._downloads.get(seg[2], ("", 0.0))
            if not key or until <= self.clock():
                raise _Error(403, "Forbidden", "The download link is invalid or has expired")
        elif seg[:2] == ["attachments", "token"] and len(seg) == 3 and seg[2] in self.files:
            key = seg[2]
            att = self.attachments[self._file_ids[key]]
            if att["malware_scan_result"] == "malware_found" and not att["malware_access_override"]:
                raise _Error(403, "Forbidden", "The attachment was flagged as malware")
            if self.private_attachments:
                self._auth(headers)
                ticket = secrets.token_urlsafe(16)
                self._downloads[ticket] = (key, self.clock() + 60)
                where = self.url.replace("127.0.0.1", "localhost")
                return _Reply(302, None, {"Location": f"{where}/attachments/download/{ticket}"})
        else:
            raise _Error(404, "RecordNotFound", "Not found")
        data, ctype = self.files[key]
        return _Reply(200, None, {"Content-Type": ctype}, raw=data)

    def _oauth(self, data: Json) -> _Reply:
        grant = data.get("grant_type")
        if grant not in ("client_credentials", "authorization_code", "refresh_token"):
            raise _Error(400, "unsupported_grant_type", error_description="grant not supported")
        if (
            data.get("client_id") != self.client_id
            or data.get("client_secret") != self.client_secret
        ):
            raise _Error(401, "invalid_client", error_description="Client authentication failed")
        ttl = data.get("expires_in")
        if ttl is not None and not (isinstance(ttl, int) and 300 < ttl < 172_800):
            raise _Error(400, "invalid_request", error_description="expires_in is out of range")
        if grant == "client_credentials":
            token = secrets.token_urlsafe(24)
            self.issued[token] = self.clock() + (ttl or 172_800)
            return _Reply(
                201,
                {"access_token": token, "token_type": "bearer", "scope": data.get("scope", "read")},
            )
        refresh_ttl = data.get("refresh_token_expires_in")
        if refresh_ttl is not None and not (
            isinstance(refresh_ttl, int)
            and 604_800 < refresh_ttl < 7_776_000
            and refresh_ttl > (ttl or 0)
        ):
            raise _Error(
                400, "invalid_request", error_description="refresh_token_expires_in is out of range"
            )
        refused = _Error(
            400,
            "invalid_grant",
            error_description="The provided authorization grant is invalid, expired, or revoked",
        )
        if grant == "authorization_code":
            # A code is good once, used or refused.
            entry = self.codes.pop(str(data.get("code")), None)
            if entry is None or entry["expires"] <= self.clock():
                raise refused
            if data.get("redirect_uri") != entry["redirect_uri"]:
                raise refused
        else:
            entry = self.refresh_tokens.get(str(data.get("refresh_token")))
            if entry is None or entry["expires"] <= self.clock():
                raise refused
        scope = str(data.get("scope") or entry["scope"])
        if not set(scope.split()) <= set(entry["scope"].split()):
            raise _Error(400, "invalid_scope", error_description="scope exceeds the grant")
        if grant == "refresh_token":
            # A refresh deletes the previous access and refresh tokens.
            del self.refresh_tokens[str(data["refresh_token"])]
            self.issued.pop(entry["access"], None)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        ttl, refresh_ttl = ttl or ACCESS_TTL, refresh_ttl or REFRESH_TTL
        self.issued[access] = self.clock() + ttl
        self.refresh_tokens[refresh] = {
            "access": access,
            "scope": scope,
            "expires": self.clock() + refresh_ttl,
        }
        return _Reply(
            201,
            {
                "access_token": access,
                "token_type": "bearer",
                "scope": scope,
                "expires_in": ttl,
                "refresh_token": refresh,
                "refresh_token_expires_in": refresh_ttl,
            },
        )

    def _create_or_update_user(self, data: Json) -> _Reply:
        u = data.get("user")
        if not isinstance(u, dict):
            raise _Error(400, "InvalidEndpoint", "user is required")
        ext, email = u.get("external_id"), u.get("email")
        # Identified by external id or by e-mail (any of the user's addresses), as documented:
        # whoever matches is updated, whatever their role.
        for existing in self.users.values():
            same_ext = ext and str(existing.get("external_id") or "").lower() == str(ext).lower()
            if same_ext or (email and str(email).lower() in self._emails(existing)):
                existing.update({k: v for k, v in u.items() if k != "skip_verify_email"})
                return _Reply(200, {"user": existing})
        if not str(u.get("name") or "").strip():
            raise _invalid("name", "Name:  is too short (minimum one character)")
        uid = self._next_user
        self._next_user += 1
        user = {
            "id": uid,
            "role": "end-user",
            "email": None,
            "external_id": None,
            **{k: v for k, v in u.items() if k != "skip_verify_email"},
        }
        self.users[uid] = user
        return _Reply(201, {"user": user})

    def _emails(self, user: Json) -> set[str]:
        """Every e-mail address of a user, primary and secondary, lower-cased."""
        found = {str(user.get("email") or "").lower()}
        found |= {str(i["value"]).lower() for i in self.identities.get(user["id"], [])}
        return found - {""}

    def _search_users(self, q: dict[str, str]) -> _Reply:
        """`query=email:<address>` matches any identity exactly; other text is a substring
        of name or e-mail (Zendesk's search syntax, the part the bridge uses)."""
        if "external_id" in q:
            ext = q["external_id"].lower()
            found = [
                u for u in self.users.values() if str(u.get("external_id") or "").lower() == ext
            ]
        else:
            query = q.get("query", "").strip()
            if not query:
                raise _Error(400, "InvalidSearch", "query is required")
            field, sep, value = query.partition(":")
            if sep and field == "email":
                wanted = value.strip().strip('"').lower()
                found = [u for u in self.users.values() if wanted in self._emails(u)]
            else:
                needle = query.lower()
                found = [
                    u
                    for u in self.users.values()
                    if needle in str(u.get("name") or "").lower()
                    or any(needle in e for e in self._emails(u))
                ]
            found = [u for u in found if u["id"] not in self.unindexed]
        return _Reply(
            200, {"users": found, "next_page": None, "previous_page": None, "count": len(found)}
        )

    def _add_identity(self, uid: int, data: Json) -> _Reply:
        user = self.users.get(uid)
        if user is None:
            raise _Error(404, "RecordNotFound", "Not found")
        identity = data.get("identity")
        if not isinstance(identity, dict) or identity.get("type") != "email":
            raise _invalid("type", "Type is invalid")
        value = str(identity.get("value") or "")
        if "@" not in value:
            raise _invalid("value", f"Value: {value} is not properly formatted")
        for other in self.users.values():
            if other["id"] != uid and value.lower() in self._emails(other):
                raise _invalid("value", f"Value: {value} is already being used by another user")
        entry = {
            "id": self._event_id(),
            "user_id": uid,
            "type": "email",
            "value": value,
            "verified": False,
            "primary": not user.get("email"),
        }
        if entry["primary"]:
            user["email"] = value
        else:
            self.identities.setdefault(uid, []).append(entry)
        return _Reply(201, {"identity": entry})

    def _ticket(self, tid: str) -> Json:
        if not tid.isdigit() or int(tid) not in self.tickets:
            raise _Error(404, "RecordNotFound", "Not found")
        return self.tickets[int(tid)]

    def _create_ticket(self, me: int, headers: dict[str, str], body: bytes) -> _Reply:
        key = {k.lower(): v for k, v in headers.items()}.get("idempotency-key")
        digest = hashlib.sha256(body).hexdigest()
        if key and key in self.idempotency:
            old_digest, old_reply, at = self.idempotency[key]
            if self.clock() - at < 7200:
                if old_digest != digest:
                    raise _Error(
                        400,
                        "IdempotentRequestError",
                        "Request parameters don't match the previous request with the "
                        "same idempotency key",
                    )
                return _Reply(201, old_reply, {"x-idempotency-lookup": "hit"})
        data = self._json_body(headers, body)
        t_in = data.get("ticket")
        if not isinstance(t_in, dict):
            raise _Error(400, "InvalidEndpoint", "ticket is required")
        c = t_in.get("comment")
        if not isinstance(c, dict) or not str(c.get("body") or "").strip():
            raise _invalid("base", "Description: cannot be blank")
        requester = t_in.get("requester_id", me)
        if requester not in self.users:
            raise _invalid("requester_id", "Requester: is invalid")
        tid = self._next_ticket
        self._next_ticket += 1
        now = _iso(self.clock())
        t: Json = {
            "id": tid,
            "url": f"{self.url}/api/v2/tickets/{tid}.json",
            "subject": t_in.get("subject") or "",
            "raw_subject": t_in.get("subject") or "",
            "description": c["body"],
            "status": "new",
            "requester_id": requester,
            "submitter_id": me,
            "assignee_id": t_in.get("assignee_id"),
            "group_id": t_in.get("group_id"),
            "external_id": t_in.get("external_id"),
            "tags": sorted(set(t_in.get("tags") or [])),
            "created_at": now,
            "updated_at": now,
            "via": {"channel": "api"},
        }
        self.tickets[tid] = t
        events = [self._add_comment(t, c, c.get("author_id") or me, [])]
        events += [self._change("status", "new"), self._change("subject", t["subject"])]
        audit = self._touch(t, me, events, "Create")
        reply = {"ticket": self._public(t), "audit": audit}
        if key:
            self.idempotency[key] = (digest, reply, self.clock())
        return _Reply(201, reply, {"Location": t["url"], "x-idempotency-lookup": "miss"})

    def _update_ticket(self, me: int, t: Json, data: Json) -> _Reply:
        upd = data.get("ticket")
        if not isinstance(upd, dict):
            raise _Error(400, "InvalidEndpoint", "ticket is required")
        if t["status"] == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        if "safe_update" in upd and upd.get("updated_stamp") not in (None, t["updated_at"]):
            raise _Error(
                409,
                "UpdateConflict",
                "Safe Update prevented the update due to outdated ticket data. "
                "Please fetch the latest ticket data and try again.",
            )
        events: list[Json] = []
        for f in ("requester_id", "assignee_id"):
            if f in upd and upd[f] is not None and upd[f] not in self.users:
                raise _invalid(f, f"{f}: is invalid")
        if upd.get("group_id") is not None and upd["group_id"] not in self.groups:
            raise _invalid("group", "Group: is invalid")
        new_assignee = upd.get("assignee_id", t.get("assignee_id"))
        new_group = upd.get("group_id", t.get("group_id"))
        new_status = upd.get("status", t["status"])
        if new_status in ("solved", "closed") and not new_assignee:
            raise _invalid("assignee_id", "Assignee: is required when solving a ticket")
        if new_group is not None and new_assignee not in (None, *self.members[new_group]):
            # Zendesk's answer, word for word (an admin is no exception).
            raise _Error(
                422,
                "RecordInvalid",
                "Record validation errors",
                details={
                    "assignee": [
                        {"description": "Assignee: is invalid", "error": "InvalidValue"},
                        {"description": "Assignee: is not a member of the group"},
                    ]
                },
            )
        c = upd.get("comment")
        if c is not None:
            if not isinstance(c, dict) or not str(c.get("body") or "").strip():
                raise _invalid("comment", "Comment: body cannot be blank")
            author = c.get("author_id", me)
            if author not in self.users:
                raise _invalid("comment", "Comment: author is invalid")
            atts: list[Json] = []
            for token in c.get("uploads") or []:
                if token not in self.uploads:
                    raise _invalid("comment", f"Upload token {token} is invalid")
                atts += self.uploads.pop(token)
            events.append(self._add_comment(t, c, author, atts))
        # `tags` replaces the ticket's tags. `additional_tags` and `remove_tags` belong to
        # Update Many Tickets only; here they are ignored, as unknown fields are.
        if "tags" in upd:
            tags = sorted({str(x).lower() for x in upd["tags"] or []})
            if tags != t["tags"]:
                t["tags"] = tags
                events.append(self._change("tags", tags))
        for f in ("requester_id", "assignee_id", "group_id", "status"):
            if f in upd and upd[f] != t.get(f):
                t[f] = upd[f]
                events.append(self._change(f, upd[f]))
        if t["status"] == "new" and c is not None and "status" not in upd:
            t["status"] = "open"
            events.append(self._change("status", "open"))
        audit = self._touch(t, me, events)
        return _Reply(200, {"ticket": self._public(t), "audit": audit})

    def _list_comments(self, t: Json, q: dict[str, str]) -> _Reply:
        items = list(self._comments.get(t["id"], []))
        if q.get("include_inline_images") != "true":
            # Documented default: inline images are left out of the attachment lists.
            items = [
                {**c, "attachments": [a for a in c["attachments"] if not a["inline"]]}
                for c in items
            ]
        cursor = any(k.startswith("page[") for k in q)
        # Documented: `sort` ("created_at" or "-created_at") with cursor pagination,
        # `sort_order` ("asc" or "desc") with offset pagination; ascending by default.
        if "sort" in q and q["sort"] not in ("created_at", "-created_at"):
            raise _Error(400, "InvalidPaginationParameter", "sort is invalid")
        if "sort_order" in q and q["sort_order"] not in ("asc", "desc"):
            raise _Error(400, "InvalidPaginationParameter", "sort_order is invalid")
        newest_first = q.get("sort") == "-created_at" if cursor else q.get("sort_order") == "desc"
        items.sort(key=lambda c: (c["created_at"], c["id"]), reverse=newest_first)
        if not cursor:
            out: Json = {
                "comments": items,
                "next_page": None,
                "previous_page": None,
                "count": len(items),
            }
        else:
            size = int(q.get("page[size]", "100"))
            if not 1 <= size <= 100:
                raise _Error(400, "InvalidPaginationParameter", "page[size] must be 1 to 100")
            start = 0
            if "page[after]" in q:
                try:
                    after = int(base64.urlsafe_b64decode(q["page[after]"]).decode())
                except ValueError as exc:
                    raise _Error(400, "InvalidPaginationParameter", "invalid cursor") from exc
                start = next((i + 1 for i, c in enumerate(items) if c["id"] == after), len(items))
            page = items[start : start + size]
            has_more = start + size < len(items)

            def cur(c: Json) -> str:
                return base64.urlsafe_b64encode(str(c["id"]).encode()).decode()

            base = f"{self.url}/api/v2/tickets/{t['id']}/comments.json?page[size]={size}"
            if "sort" in q:
                base += f"&sort={q['sort']}"
            out = {
                "comments": page,
                "meta": {
                    "has_more": has_more,
                    "after_cursor": cur(page[-1]) if page else None,
                    "before_cursor": cur(page[0]) if page else None,
                },
                "links": {
                    "next": f"{base}&page[after]={cur(page[-1])}" if has_more else None,
                    "prev": None,
                },
            }
        if "users" in q.get("include", ""):
            # The authors of the comments on this page.
            ids = {c["author_id"] for c in out["comments"]}
            out["users"] = [self.users[i] for i in sorted(ids) if i in self.users]
        return _Reply(200, out)

    def _upload(self, q: dict[str, str], headers: dict[str, str], body: bytes) -> _Reply:
        name = q.get("filename", "")
        if not name:
            raise _Error(400, "InvalidEndpoint", "filename is required")
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if not ctype or ctype.startswith("application/x-www-form-urlencoded"):
            raise _invalid("content_type", "Content-Type must describe the uploaded file")
        att = self._store_file(name, ctype, body)
        token = q.get("token") or secrets.token_urlsafe(16)
        if q.get("token") and token not in self.uploads:
            raise _invalid("token", "Upload token is invalid")
        self.uploads.setdefault(token, []).append(att)
        return _Reply(
            201,
            {
                "upload": {
                    "token": token,
                    "attachment": att,
                    "attachments": list(self.uploads[token]),
                }
            },
        )

    def _show_many(self, q: dict[str, str]) -> _Reply:
        """Up to 100 tickets by id, as documented; unknown ids are left out."""
        ids = [i for i in q.get("ids", "").split(",") if i]
        if not ids or len(ids) > 100 or not all(i.isdigit() for i in ids):
            raise _Error(400, "InvalidValue", "ids must list 1 to 100 ticket ids")
        found = [self._public(self.tickets[int(i)]) for i in ids if int(i) in self.tickets]
        return _Reply(200, {"tickets": found, "next_page": None, "previous_page": None})

    def _export(self, q: dict[str, str]) -> _Reply:
        if "cursor" in q:
            after = int(base64.urlsafe_b64decode(q["cursor"]).decode())
            changed = [t for t in self.tickets.values() if t["_seq"] > after]
        elif "start_time" in q:
            start = int(q["start_time"])
            if start > self.clock() - 60:
                raise _Error(400, "InvalidValue", "start_time must be more than a minute ago")
            changed = [t for t in self.tickets.values() if t["_updated"] >= start]
        else:
            raise _Error(400, "InvalidValue", "start_time or cursor is required")
        changed.sort(key=lambda t: t["_seq"])
        last = max(
            [t["_seq"] for t in changed]
            + [int(base64.urlsafe_b64decode(q["cursor"]).decode()) if "cursor" in q else self._seq]
        )
        cursor = base64.urlsafe_b64encode(str(last).encode()).decode()
        return _Reply(
            200,
            {
                "tickets": [self._public(t) for t in changed],
                "after_cursor": cursor,
                "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
                "before_cursor": None,
                "before_url": None,
                "end_of_stream": True,
            },
        )

    def _create_webhook(self, me: int, data: Json) -> _Reply:
        w = data.get("webhook")
        if not isinstance(w, dict):
            raise _Error(400, "InvalidEndpoint", "webhook is required")
        for f in ("name", "endpoint", "http_method", "request_format", "status", "subscriptions"):
            if f not in w:
                raise _Error(
                    400,
                    "RequiredFieldMissing",
                    f"{f} is required",
                    errors=[{"code": "RequiredFieldMissing", "title": f"{f} is required"}],
                )
        self._check_webhook(w)
        wid = "01" + secrets.token_hex(12).upper()
        hook = {**w, "id": wid, "created_by": str(me), "created_at": _iso(self.clock())}
        self.webhooks[wid] = hook
        self.signing_secrets[wid] = secrets.token_urlsafe(32)
        return _Reply(201, {"webhook": hook})

    @staticmethod
    def _check_webhook(w: Json) -> None:
        """The documented values of the fields the bridge sets (Webhooks API, JSON format)."""
        allowed = {
            "http_method": ("GET", "POST", "PUT", "PATCH", "DELETE"),
            "request_format": ("json", "xml", "form_encoded"),
            "status": ("active", "inactive"),
        }
        for f, values in allowed.items():
            if f in w and w[f] not in values:
                raise _Error(
                    400,
                    "InvalidValue",
                    f"{f} must be one of {', '.join(values)}",
                    errors=[{"code": "InvalidValue", "title": f"{f} is invalid"}],
                )
        subs = w.get("subscriptions", [])
        # A webhook a trigger calls is subscribed to "conditional_ticket_events" only.
        if (
            not isinstance(subs, list)
            or not all(isinstance(x, str) and x for x in subs)
            or ("conditional_ticket_events" in subs and len(subs) > 1)
        ):
            raise _Error(
                400,
                "InvalidValue",
                "subscriptions is invalid",
                errors=[{"code": "InvalidValue", "title": "subscriptions is invalid"}],
            )

    def _patch_webhook(self, wid: str, data: Json) -> _Reply:
        if wid not in self.webhooks:
            raise _Error(404, "RecordNotFound", "Not found")
        w = data.get("webhook")
        if not isinstance(w, dict):
            raise _Error(400, "InvalidEndpoint", "webhook is required")
        self._check_webhook(w)
        read_only = {"id", "created_at", "created_by", "signing_secret", "external_source"}
        self.webhooks[wid].update({k: v for k, v in w.items() if k not in read_only})
        return _Reply(204)

    def _save_trigger(self, trid: int | None, data: Json) -> _Reply:
        t = data.get("trigger")
        if not isinstance(t, dict) or not t.get("title") or not t.get("actions"):
            raise _invalid("base", "Trigger: title, conditions and actions are required")
        self._check_conditions(t.get("conditions"))
        for action in t["actions"]:
            if action.get("field") == "notification_webhook":
                wid, payload = action["value"]
                if wid not in self.webhooks:
                    raise _invalid("actions", "Webhook is invalid")
                json.loads(payload)
        created = trid is None
        if trid is None:
            trid = max(self.triggers, default=500) + 1
        trig = {"active": True, **t, "id": trid}
        self.triggers[trid] = trig
        return _Reply(201 if created else 200, {"trigger": trig})

    def _check_conditions(self, conditions: Any) -> None:
        """Conditions as the Triggers API documents them: `all` and `any`, lists of
        {field, operator, value}; the operators and values of the fields the fake knows."""
        if not isinstance(conditions, dict):
            raise _invalid("conditions", "Conditions: are required")
        known = {
            "update_type": ("is", "is_not"),
            "current_tags": ("includes", "not_includes"),
            "current_user": ("is", "is_not"),
        }
        for c in (conditions.get("all") or []) + (conditions.get("any") or []):
            if not isinstance(c, dict) or not isinstance(c.get("field"), str):
                raise _invalid("conditions", "Conditions: each needs a field and an operator")
            name, op, value = c["field"], c.get("operator"), c.get("value")
            if name in known and op not in known[name]:
                raise _invalid("conditions", f"Conditions: {op} is not an operator of {name}")
            if name == "update_type" and value not in ("Create", "Change"):
                raise _invalid("conditions", f"Conditions: {value} is not an update type")
            if name == "current_user" and not (
                str(value).isdigit() and int(str(value)) in self.users
            ):
                raise _invalid("conditions", f"Conditions: user {value} is invalid")


class FileServer:
    """Serves files from memory on 127.0.0.1, for attachment downloads."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def add(self, path: str, data: bytes, content_type: str) -> str:
        self.files[path] = (data, content_type)
        return f"{self.url}{path}"

    def start(self) -> FileServer:
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                got = files.get(urlsplit(self.path).path)
                if got is None:
                    self.send_error(404)
                    return
                data, ctype = got
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def running(fake: FakeZendesk) -> Iterator[FakeZendesk]:
    """For a pytest fixture: `yield from running(FakeZendesk())`."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
