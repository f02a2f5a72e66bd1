"""Chatwoot behind the bridge's helpdesk interface (HELPDESK=chatwoot).

One Chatwoot conversation per hand-off, in an API-channel inbox, its contact the end user
(found by `identifier` = the bridge's user id). End users' messages are `incoming`, the
bot's `outgoing` starting with BOT_PREFIX; every message the bridge writes carries its
event ids in `content_attributes`, so a retry finds what already landed and nothing the
bridge wrote is read back as an agent's.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bridge.config import Settings
from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.fetcher import Fetcher, FetchError, FetchPolicy, loggable
from bridge.helpdesks import inbound, render
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    Change,
    Changes,
    Helpdesk,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.helpdesks.budget import Budget
from bridge.helpdesks.chatwoot import webhook
from bridge.helpdesks.chatwoot.client import ChatwootClient, Json, Upload, payload_of
from bridge.helpdesks.chatwoot.config import ChatwootConfig, config_problems
from bridge.helpdesks.chatwoot.state import AdapterState, Cursor
from bridge.storage import Conversation, Store, User

log = logging.getLogger(__name__)

#: The conversation's custom attribute holding the bridge's conversation id.
CONV_ATTR = "hitl_bridge_conversation"
#: The identifier of the stand-in contact of a hand-off whose end user is not known yet.
PLACEHOLDER = "hitl-bridge-conversation:"
PLACEHOLDER_NAME = "Botpress user"
API_CHANNEL = "Channel::Api"
#: Chatwoot answers `after=<id>` with up to 100 messages.
PAGE = 100
MAX_PAGES = 50
#: Message types in API answers (integers) and in webhooks (names).
INCOMING, OUTGOING = 0, 1
_KINDS = {
    "image": ("image", "imageUrl"),
    "audio": ("audio", "audioUrl"),
    "video": ("video", "videoUrl"),
}
_EMAIL = re.compile(r"[^@\s\"'(),:;<>\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}")


def _int_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise PermanentError(f"{what} {value!r} is not a Chatwoot id") from exc


def budget_of(store: Store, config: ChatwootConfig) -> Budget | None:
    """The account's API budget shared by every process, when CHATWOOT_RATE_LIMIT sets one."""
    if not config.rate_limit:
        return None
    key = store.key("adapter", "chatwoot", "budget")
    return Budget(
        store.redis, key, config.rate_limit, label="Chatwoot", setting="CHATWOOT_RATE_LIMIT"
    )


class ChatwootHelpdesk(Helpdesk):
    """Conversations, messages and contacts in one Chatwoot account's API inbox."""

    name = "chatwoot"
    max_batch = 20

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        client: ChatwootClient | None = None,
        clock: Callable[[], float] = time.time,
        fetcher: Fetcher | None = None,
    ) -> None:
        super().__init__(settings, store)
        self.config = ChatwootConfig.from_environ(settings.environ)
        self.state = AdapterState(store)
        self.client = client or ChatwootClient(
            self.config,
            timeout=settings.http_timeout,
            concurrency=settings.pumps,
            budget=budget_of(store, self.config),
        )
        # Files named in messages, fetched by the one SSRF-safe fetcher.
        self.fetcher = fetcher or Fetcher(FetchPolicy.from_settings(settings))
        self.clock = clock
        self._me = ""
        self._me_lock = threading.Lock()

    @classmethod
    def config_problems(cls, environ: Mapping[str, str]) -> list[str]:
        return config_problems(environ)

    @property
    def poll_interval(self) -> float:
        return self.config.poll_interval

    # -- the webhook's secrets ----------------------------------------------------------
    def webhook_tokens(self) -> list[str]:
        """The URL tokens accepted: CHATWOOT_WEBHOOK_TOKEN, else the one derived from
        BRIDGE_SECRET (and from BRIDGE_SECRET_PREVIOUS during a rotation). The first is
        the one `chatwoot setup` registers."""
        return inbound.url_tokens(self.settings, "chatwoot", self.config.webhook_token)

    def webhook_url(self, public_url: str) -> str:
        return f"{public_url.rstrip('/')}/webhooks/chatwoot/{self.webhook_tokens()[0]}"

    def webhook_secret(self) -> str:
        """The secret Chatwoot signs the webhook with, when it signs ('' when unknown)."""
        return self.config.webhook_secret or self.state.webhook_secret()

    # -- who the bridge is in Chatwoot --------------------------------------------------
    def api_user_id(self) -> str:
        """The id of the user the API token acts as (cached in memory and Redis)."""
        if self._me:
            return self._me
        with self._me_lock:
            if not self._me:
                cached = self.state.api_user_id()
                if cached:
                    self._me = cached
                else:
                    profile = self.client.call("GET", "/api/v1/profile", what="Chatwoot profile")
                    uid = profile.get("id") if isinstance(profile, dict) else None
                    if not isinstance(uid, int):
                        raise PermanentError("Chatwoot profile: the token maps to no user")
                    self._me = str(uid)
                    self.state.set_api_user_id(self._me)
        return self._me

    # -- Botpress -> Chatwoot -----------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        """Create or update the end user's contact, found by identifier (the bridge's user
        id): idempotent, so `maybe_applied` needs no check of its own."""
        fields: Json = {
            "identifier": user.id,
            "name": user.name.strip() or user.email.strip() or f"Botpress user {user.id}",
        }
        if user.picture_url.strip():
            fields["avatar_url"] = user.picture_url.strip()
        email = user.email.strip()
        if _EMAIL.fullmatch(email):
            fields["email"] = email
        return self._upsert_contact(fields)

    def _upsert_contact(self, fields: Json) -> str:
        identifier = str(fields["identifier"])
        found = self._find_contact(identifier)
        if found is not None:
            self._write_contact("PUT", f"/contacts/{found}", fields, identifier)
            return found
        body = {"inbox_id": self.config.inbox_id, **fields}
        try:
            data = self._write_contact("POST", "/contacts", body, identifier)
        except PermanentError as exc:
            # Taken meanwhile (another worker, or an earlier try whose answer was lost).
            if exc.status == 422 and (again := self._find_contact(identifier)):
                return again
            raise
        contact = _contact(data)
        if not isinstance(contact.get("id"), int):
            raise PermanentError("Chatwoot create contact: no contact id in the answer")
        cid = str(contact["id"])
        source = _source_in(data, self.config.inbox_id)
        if source:
            self.state.set_source_id(cid, source)
        return cid

    def _write_contact(self, method: str, path: str, body: Json, identifier: str) -> Any:
        what = "Chatwoot create contact" if method == "POST" else "Chatwoot update contact"
        try:
            return self.client.call(method, path, what=what, body=body)
        except PermanentError as exc:
            # The e-mail is the end user's own word and contacts' e-mails are unique:
            # one already held by another contact is left out, never merged into it.
            if exc.status != 422 or "email" not in body or "mail" not in (exc.response or ""):
                raise
            log.warning(
                "chatwoot: the end user's e-mail belongs to another contact; left out",
                extra={"user": identifier},
            )
            return self.client.call(
                method, path, what=what, body={k: v for k, v in body.items() if k != "email"}
            )

    def _find_contact(self, identifier: str) -> str | None:
        data = self.client.call(
            "GET", "/contacts/search", what="Chatwoot search contacts", params={"q": identifier}
        )
        found = payload_of(data)
        ids = [
            c["id"]
            for c in (found if isinstance(found, list) else [])
            if isinstance(c, dict)
            and c.get("identifier") == identifier
            and isinstance(c.get("id"), int)
        ]
        return str(min(ids)) if ids else None

    def _source_id(self, contact_id: str) -> str:
        """The contact's source_id in the bridge's inbox, made when it has none."""
        known = self.state.source_id(contact_id)
        if known:
            return known
        data = self.client.call("GET", f"/contacts/{contact_id}", what="Chatwoot show contact")
        source = _source_in(data, self.config.inbox_id)
        if not source:
            made = self.client.call(
                "POST",
                f"/contacts/{contact_id}/contact_inboxes",
                what="Chatwoot create contact inbox",
                body={"inbox_id": self.config.inbox_id},
            )
            source = str((made or {}).get("source_id") or "") if isinstance(made, dict) else ""
        if not source:
            raise PermanentError(f"Chatwoot gave contact {contact_id} no source_id in the inbox")
        self.state.set_source_id(contact_id, source)
        return source

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        known = self.state.ticket_of(conv.id)
        if known:
            return known
        requester = request.requester
        if requester is not None:
            contact = requester.helpdesk_id or self.upsert_user(requester, maybe_applied=False)
        else:
            # Botpress names the end user only with their first message: a stand-in
            # contact holds the conversation until then (merged into theirs).
            contact = self._upsert_contact(
                {"identifier": f"{PLACEHOLDER}{conv.id}", "name": PLACEHOLDER_NAME}
            )
        if maybe_applied and (found := self._find_conversation(contact, conv.id)):
            self.state.set_ticket_of(conv.id, found)
            return found
        title = (request.title or conv.title).strip()
        text = render.history_text(
            request.description or conv.description,
            [(h.text, h.author, h.timestamp) for h in request.history],
        )
        body: Json = {
            "source_id": self._source_id(contact),
            "inbox_id": self.config.inbox_id,
            "contact_id": _int_id(contact, "contact"),
            "status": "open",
            "custom_attributes": {CONV_ATTR: conv.id},
            # The hand-off's first message: its title, description and the bot history.
            "message": {"content": f"{title}\n\n{text}" if title else text},
        }
        data = self.client.call(
            "POST", "/conversations", what="Chatwoot create conversation", body=body
        )
        tid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(tid, int):
            raise PermanentError("Chatwoot create conversation: no conversation id in the answer")
        self.state.set_ticket_of(conv.id, str(tid))
        return str(tid)

    def _find_conversation(self, contact: str, bridge_conv: str) -> str | None:
        data = self.client.call(
            "GET", f"/contacts/{contact}/conversations", what="Chatwoot contact conversations"
        )
        found = payload_of(data)
        ids = [
            c["id"]
            for c in (found if isinstance(found, list) else [])
            if isinstance(c, dict)
            and isinstance(c.get("id"), int)
            and (c.get("custom_attributes") or {}).get(CONV_ATTR) == bridge_conv
        ]
        return str(min(ids)) if ids else None

    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        tid = self._ticket_id(conv)
        if author.kind == "end_user":
            if author.user is None:
                raise PermanentError("an end-user message came without its user record")
            contact = author.user.helpdesk_id or self.upsert_user(author.user, maybe_applied=False)
            if not conv.requester:
                self._adopt(tid, contact)
        if maybe_applied:
            # An earlier try may have landed, perhaps with fewer messages than this batch.
            messages = messages[self._already_sent(tid, author.kind, messages) :]
            if not messages:
                return
        rendered = _rendered(author.kind, messages)
        uploads, failed = self._attach(rendered.files)
        content = rendered.body(failed)
        kind = "incoming" if author.kind == "end_user" else "outgoing"
        marker = {webhook.MARKER: {"events": [m.event_id for m in messages]}}
        what = "Chatwoot create message"
        if uploads:
            fields = {
                "content": content,
                "message_type": kind,
                "private": "false",
                "content_attributes": _dumps(marker),
            }
            data = self.client.call(
                "POST", f"/conversations/{tid}/messages", what=what, form=(fields, uploads)
            )
        else:
            body = {
                "content": content,
                "message_type": kind,
                "private": False,
                "content_attributes": marker,
            }
            data = self.client.call("POST", f"/conversations/{tid}/messages", what=what, body=body)
        mid = data.get("id") if isinstance(data, dict) else None
        if isinstance(mid, int):
            self.state.remember_written(tid, [mid])

    def _adopt(self, tid: str, contact: str) -> None:
        """The end user's first message: their contact takes the conversation over from
        the stand-in (merged into theirs, so their other conversations sit together)."""
        data = self.client.call("GET", f"/conversations/{tid}", what="Chatwoot show conversation")
        sender = ((data or {}).get("meta") or {}).get("sender") or {}
        holder = sender.get("id")
        if not isinstance(holder, int) or str(holder) == contact:
            return
        if not str(sender.get("identifier") or "").startswith(PLACEHOLDER):
            return  # a real contact already holds it: never merged into another
        try:
            self.client.call(
                "POST",
                "/actions/contact_merge",
                what="Chatwoot merge contacts",
                body={
                    "base_contact_id": _int_id(contact, "contact"),
                    "mergee_contact_id": holder,
                },
            )
        except PermanentError as exc:
            if exc.status != 404:
                raise
            # The stand-in went with an earlier try's merge: read again next time.
            raise TransientError(
                f"Chatwoot merge contacts: {exc.reason}", status=404, response=exc.response
            ) from exc
        self.state.set_source_id(contact, "")  # the merge may have moved contact inboxes

    def _already_sent(self, tid: str, kind: str, messages: Sequence[OutboundMessage]) -> int:
        """How many of `messages` (a leading part) the conversation's latest messages hold:
        by the event ids the bridge marks its messages with, else by their text."""
        data = self.client.call(
            "GET", f"/conversations/{tid}/messages", what="Chatwoot list messages"
        )
        recent = [m for m in _messages(data)]
        landed: set[str] = set()
        for m in recent:
            events = _marker(m).get("events")
            if isinstance(events, list):
                landed.update(str(e) for e in events)
        k = 0
        while k < len(messages) and messages[k].event_id in landed:
            k += 1
        if k or landed:
            return k
        # No marker kept (an older Chatwoot drops unknown content_attributes): the latest
        # message of the same direction, made since the first message reached the bridge.
        wanted = INCOMING if kind == "end_user" else OUTGOING
        since = int(messages[0].at) - 1
        mine = [m for m in recent if _type(m) == wanted and _created(m) >= since]
        if not mine:
            return 0
        held = str(mine[-1].get("content") or "")
        for n in range(len(messages), 0, -1):
            rendered = _rendered(kind, messages[:n])
            body = held
            for ref in rendered.files:
                body = body.replace(ref.fallback, "")
            if render.normalize(body) == render.normalize(rendered.body()):
                if isinstance(mine[-1].get("id"), int):
                    self.state.remember_written(tid, [mine[-1]["id"]])
                return n
        return 0

    def _attach(self, files: Sequence[render.FileRef]) -> tuple[list[Upload], set[int]]:
        """Download each file; returns the uploads and the indexes that fell back to links."""
        uploads: list[Upload] = []
        failed: set[int] = set()
        # One budget for all of them: the delivery must end well within its lease.
        deadline = time.monotonic() + self.fetcher.policy.deadline
        for i, ref in enumerate(files):
            try:
                got = self.fetcher.fetch(
                    ref.url, deadline=deadline, max_bytes=self.config.max_attachment_bytes
                )
            except FetchError as exc:
                # Never the query string: a chat message's URL may carry a token in it.
                log.warning(
                    "chatwoot: %s not attached (%s); linking %s",
                    ref.name,
                    exc.reason,
                    loggable(ref.url),
                )
                failed.add(i)
                continue
            ctype = got.content_type
            if not ctype or ctype == "application/octet-stream":
                ctype = mimetypes.guess_type(ref.name)[0] or "application/octet-stream"
            uploads.append(Upload(ref.name, ctype, got.content))
        return uploads, failed

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        """Resolve the conversation (Chatwoot notes who did, as an activity line); one
        already resolved is left alone, so a retry writes nothing."""
        tid = self._ticket_id(conv)
        data = self.client.call("GET", f"/conversations/{tid}", what="Chatwoot show conversation")
        if isinstance(data, dict) and data.get("status") == "resolved":
            return
        # Flagged first, so the resolution this causes is never reported back as an agent's.
        self.state.mark_closed_by_bridge(tid)
        try:
            self.client.call(
                "POST",
                f"/conversations/{tid}/toggle_status",
                what="Chatwoot resolve conversation",
                body={"status": "resolved"},
            )
        except PermanentError:
            self.state.clear_closed_by_bridge(tid)
            raise

    # -- Chatwoot -> Botpress -----------------------------------------------------------
    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        tid = self._ticket_id(conv)
        cur = Cursor.parse(cursor)
        data = self.client.call("GET", f"/conversations/{tid}", what="Chatwoot show conversation")
        if not isinstance(data, dict):
            raise TransientError("Chatwoot show conversation: no conversation in the answer")
        messages = self._messages_after(tid, cur.message_id)
        me = self.api_user_id()
        written = self.state.written(tid)

        items: list[Change] = []
        assignee_rec = (data.get("meta") or {}).get("assignee") or {}
        aid = assignee_rec.get("id") if isinstance(assignee_rec, dict) else None
        assignee = str(aid) if isinstance(aid, int) else ""
        if assignee and assignee != cur.assignee and assignee != me:
            items.append(AgentAssigned(assignee, _name(assignee_rec)))

        last = cur.message_id
        for i, m in enumerate(messages):
            mid = m["id"]
            if mid <= cur.message_id:
                continue
            last = max(last, mid)
            # The hand-off's first message (title, description, history) is the bridge's.
            first = cur.message_id == 0 and i == 0 and _sender_id(m) == me
            if first or mid in written or not _agent_reply(m, me):
                continue
            items += _agent_messages(m)

        resolved = data.get("status") == "resolved"
        if resolved and not cur.resolved and not self.state.closed_by_bridge(tid):
            items.append(TicketClosed())
        return Changes(items=items, cursor=Cursor(last, assignee, resolved).dump())

    def _messages_after(self, tid: str, after: int) -> list[Json]:
        """The conversation's messages after message `after`, oldest first."""
        out: list[Json] = []
        for _ in range(MAX_PAGES):
            data = self.client.call(
                "GET",
                f"/conversations/{tid}/messages",
                what="Chatwoot list messages",
                params={"after": after},
            )
            page = sorted(
                (m for m in _messages(data) if m["id"] > after), key=lambda m: int(m["id"])
            )
            out += page
            if len(page) < PAGE:
                break
            after = page[-1]["id"]
        else:
            log.warning(
                "chatwoot: conversation %s: over %d messages since the last read; the rest "
                "waits for the next read",
                tid,
                PAGE * MAX_PAGES,
            )
        return out

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        inbound.check_url_token(url_token, self.webhook_tokens(), "chatwoot")
        secret = self.webhook_secret()
        if secret:
            webhook.check_signature(headers, body, secret=secret, now=self.clock())
        return webhook.conversation_ids(body, account_id=self.config.account_id)

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return webhook.delivery_id(headers)

    def changed_tickets(self) -> list[str] | None:
        # Chatwoot documents no listing by last activity: every open conversation is read.
        return None

    def check(self) -> list[str]:
        where = f"Chatwoot at {self.config.base_url}"
        try:
            profile = self.client.call("GET", "/api/v1/profile", what="Chatwoot profile")
        except DeliveryError as exc:
            return [f"{where} refused CHATWOOT_API_TOKEN ({exc.reason})"]
        problems: list[str] = []
        try:
            self.client.call("GET", "", what="Chatwoot account")
        except DeliveryError as exc:
            return [
                f"{where}: account {self.config.account_id} is not reachable with this token "
                f"({exc.reason}); check CHATWOOT_ACCOUNT_ID"
            ]
        try:
            inbox = self.client.call(
                "GET", f"/inboxes/{self.config.inbox_id}", what="Chatwoot inbox"
            )
        except DeliveryError as exc:
            return [f"{where}: inbox {self.config.inbox_id} not reachable ({exc.reason})"]
        channel = inbox.get("channel_type") if isinstance(inbox, dict) else None
        if channel != API_CHANNEL:
            problems.append(
                f"inbox {self.config.inbox_id} is a {channel or 'unknown'} inbox; the bridge "
                "needs an API-channel inbox (Settings > Inboxes > Add inbox > API)"
            )
        if isinstance(profile, dict) and isinstance(profile.get("id"), int):
            self.state.set_api_user_id(str(profile["id"]))
        if (hook := self._webhook_problem()) is not None:
            problems.append(hook)
        return problems

    def _webhook_problem(self) -> str | None:
        """Whether a webhook of the account points at this bridge (None: fine, or the token
        may not list webhooks, which needs an administrator's)."""
        try:
            data = self.client.call("GET", "/webhooks", what="Chatwoot list webhooks")
        except PermanentError as exc:
            if exc.status in (401, 403):
                return None
            return f"Chatwoot webhooks not readable ({exc.reason})"
        except TransientError:
            return None
        tokens = self.webhook_tokens()
        for hook in webhooks_in(data):
            url = str(hook.get("url") or "")
            if any(url.endswith(f"/webhooks/chatwoot/{t}") for t in tokens):
                return None
        tail = (
            f"agent replies arrive only by polling every {self.poll_interval:g}s"
            if self.poll_interval
            else "and polling is off: agent replies never arrive"
        )
        return (
            f"no Chatwoot webhook points at this bridge (run `hitl-bridge chatwoot setup`); {tail}"
        )

    # -- helpers ------------------------------------------------------------------------
    def _ticket_id(self, conv: Conversation) -> str:
        if not conv.ticket_id:
            raise TransientError(f"conversation {conv.id} has no Chatwoot conversation yet")
        return conv.ticket_id


def webhooks_in(data: Any) -> list[Json]:
    """The webhooks of a listing: an array (as documented) or `payload.webhooks`."""
    found = payload_of(data)
    if isinstance(found, dict):
        found = found.get("webhooks")
    return [w for w in found if isinstance(w, dict)] if isinstance(found, list) else []


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _contact(data: Any) -> Json:
    """The contact of a create or show answer (`payload.contact`, `payload`, or itself)."""
    found = payload_of(data)
    if isinstance(found, dict) and isinstance(found.get("contact"), dict):
        return dict(found["contact"])
    if isinstance(found, list) and found and isinstance(found[0], dict):
        return dict(found[0])
    return dict(found) if isinstance(found, dict) else {}


def _source_in(data: Any, inbox_id: int) -> str:
    """The contact's source_id in `inbox_id`, from a create or show answer."""
    found = payload_of(data)
    candidates: list[Any] = []
    if isinstance(found, dict):
        candidates.append(found.get("contact_inbox"))
        candidates += _contact(data).get("contact_inboxes") or []
    for ci in candidates:
        if not isinstance(ci, dict):
            continue
        inbox = ci.get("inbox") or {}
        iid = inbox.get("id") if isinstance(inbox, dict) else ci.get("inbox_id")
        if iid == inbox_id and ci.get("source_id"):
            return str(ci["source_id"])
    return ""


def _messages(data: Any) -> list[Json]:
    found = payload_of(data)
    if not isinstance(found, list):
        return []
    return [m for m in found if isinstance(m, dict) and isinstance(m.get("id"), int)]


def _type(m: Json) -> int:
    """A message's type as a number (webhooks name it, the API numbers it)."""
    value = m.get("message_type")
    names = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
    if isinstance(value, str):
        return names.get(value, -1)
    return value if isinstance(value, int) else -1


def _created(m: Json) -> float:
    value = m.get("created_at")
    return float(value) if isinstance(value, int | float) else 0.0


def _marker(m: Json) -> Json:
    attrs = m.get("content_attributes")
    found = attrs.get(webhook.MARKER) if isinstance(attrs, dict) else None
    return found if isinstance(found, dict) else {}


def _sender_id(m: Json) -> str:
    value = m.get("sender_id")
    if value is None and isinstance(m.get("sender"), dict):
        value = m["sender"].get("id")
    return str(value) if isinstance(value, int) else ""


def _agent_reply(m: Json, me: str) -> bool:
    """An outgoing public message an agent (or the account's bots) wrote: not the bridge's,
    not a private note, activity line or automatic template (greeting, CSAT)."""
    if _type(m) != OUTGOING or m.get("private") is not False or _marker(m):
        return False
    mine = _sender_id(m) == me and str(m.get("sender_type") or "User") == "User"
    return not (mine and str(m.get("content") or "").startswith(render.BOT_PREFIX))


def _name(rec: Any) -> str:
    if not isinstance(rec, dict):
        return ""
    return str(rec.get("available_name") or rec.get("name") or "")


def _agent_messages(m: Json) -> list[AgentMessage]:
    """An agent's message as Botpress messages: its text, then each attachment."""
    kind = str(m.get("sender_type") or "User")
    sid = _sender_id(m)
    agent = sid if kind == "User" else f"{kind.lower().replace('::', '-')}-{sid}"
    name = _name(m.get("sender"))
    out: list[AgentMessage] = []
    text = str(m.get("content") or "").strip()
    if text:
        out.append(AgentMessage(agent, "text", {"text": text}, name))
    found = m.get("attachments")
    if not isinstance(found, list):
        found = [m["attachment"]] if isinstance(m.get("attachment"), dict) else []
    for a in found:
        if not isinstance(a, dict):
            continue
        url = str(a.get("data_url") or "")
        if not url.startswith(("https://", "http://")):
            continue
        ftype = str(a.get("file_type") or "file")
        if ftype in _KINDS:
            mtype, key = _KINDS[ftype]
            out.append(AgentMessage(agent, mtype, {key: url}, name))
        else:
            title = render.file_name(url, str(a.get("file_name") or ""))
            out.append(AgentMessage(agent, "file", {"fileUrl": url, "title": title}, name))
    return out


def _rendered(kind: str, messages: Sequence[OutboundMessage]) -> render.Rendered:
    """The text of consecutive messages of one author (the bot's are marked)."""
    rendered = render.render_all([(m.message_type, m.payload) for m in messages])
    if kind != "end_user":
        rendered.text = f"{render.BOT_PREFIX} {rendered.text}"
    return rendered
