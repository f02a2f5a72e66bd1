"""Freshdesk behind the bridge's helpdesk interface (HELPDESK=freshdesk).

Built on Freshdesk's API v2 reference (developers.freshdesk.com/api): contacts (`POST
/api/v2/contacts`, `unique_external_id`, 409 `duplicate_value` with the holder's id in
`additional_info.user_id`), tickets (`POST /api/v2/tickets`; `source` 7 = chat; `status`
2 open, 3 pending, 4 resolved, 5 closed; `priority` 1 low), notes (`POST
/api/v2/tickets/{id}/notes`: `private`, `incoming` = written from outside, i.e. by the
requester, `user_id`; multipart `attachments[]`), a ticket's conversations (`GET
/api/v2/tickets/{id}/conversations`, oldest first, `page`/`per_page` up to 100; `source` 0 =
reply, 2 = note) and the ticket list (`GET /api/v2/tickets?updated_since=`).

Where the bridge's conversation id lives: in a tag, `hitl-<conversation id>`, beside the
tag `botpress_hitl`. Tickets have no `external_id`, and a custom field would need an admin
to create it first; a tag needs nothing, shows in the agent's view, and the ticket list
returns tags, so a retried creation finds its ticket by it.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.config import Settings
from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.fetcher import Fetcher, FetchError, FetchPolicy, loggable
from bridge.helpdesks import render
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
from bridge.helpdesks.freshdesk import files, webhook
from bridge.helpdesks.freshdesk.client import FormField, FreshdeskClient, Json, errors, refusal
from bridge.helpdesks.freshdesk.config import FreshdeskConfig, config_problems
from bridge.helpdesks.freshdesk.state import AdapterState, Cursor
from bridge.storage import Conversation, Store, User

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger(__name__)

#: Every ticket the bridge creates carries this tag; the automation rule filters on it.
TAG = "botpress_hitl"
#: The tag that names the bridge's conversation id on its ticket.
CONV_TAG = "hitl-{}"
#: A ticket the bot ended but the bridge could not resolve carries this tag.
ENDED_TAG = "hitl_ended"
NOTE_START = "The Botpress bot "
CLOSE_NOTE = NOTE_START + "closed this hand-off (the conversation went back to the bot)."
LEFT_NOTE = (
    NOTE_START + "ended this hand-off (the conversation went back to the bot). "
    "Freshdesk refused to resolve the ticket ({why}), so it is left for an agent."
)
#: The contact that requests a ticket until its end user first writes (Freshdesk wants a
#: requester on every ticket, and the hand-off may come before the user is known).
PLACEHOLDER_ID = "botpress-hitl-bridge"
PLACEHOLDER_NAME = "Botpress conversation"
SUBJECT_MAX = 255
PER_PAGE = 100
MAX_PAGES = 30
POLL_PAGES = 5
SOURCE_CHAT = 7
STATUS_OPEN, STATUS_RESOLVED, STATUS_CLOSED = 2, 4, 5
ENDED = (STATUS_RESOLVED, STATUS_CLOSED)
PRIORITY_LOW = 1
#: Conversation sources (the API reference's "Conversation properties"): 0 reply, 2 note.
SOURCE_REPLY, SOURCE_NOTE = 0, 2
#: Answers Freshdesk gives a change it refuses to make (validation, conflict).
REFUSED = (400, 409, 422)
_NAME_MAX = 255


def _int_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise PermanentError(f"{what} {value!r} is not a Freshdesk id") from exc


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: object) -> float:
    """Seconds since the epoch of a Freshdesk timestamp ("2026-11-26T02:36:51Z"); 0 if not."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def as_html(text: str) -> str:
    """Plain text as a note's HTML body: escaped (an end user's `<script>` stays text in
    the agents' view), line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


class FreshdeskHelpdesk(Helpdesk):
    """Tickets, notes and contacts in one Freshdesk account."""

    name = "freshdesk"
    # One note per batch: a hand-off's burst of messages costs one request, not twenty.
    max_batch = 20

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        client: FreshdeskClient | None = None,
        clock: Callable[[], float] = time.time,
        fetcher: Fetcher | None = None,
    ) -> None:
        super().__init__(settings, store)
        self.config = FreshdeskConfig.from_environ(settings.environ)
        self.state = AdapterState(store)
        self.client = client or FreshdeskClient(
            self.config,
            timeout=settings.http_timeout,
            concurrency=settings.pumps,
            budget=budget_of(store, self.config),
        )
        # Files named in messages, fetched only by the one SSRF-safe fetcher.
        self.fetcher = fetcher or Fetcher(FetchPolicy.from_settings(settings))
        self.clock = clock
        self._lock = threading.Lock()
        self._me = ""

    @classmethod
    def config_problems(cls, environ: Mapping[str, str]) -> list[str]:
        return config_problems(environ)

    @property
    def poll_interval(self) -> float:
        return self.config.poll_interval

    # -- who the bridge is in Freshdesk -------------------------------------------------
    def api_agent_id(self) -> str:
        """The id of the agent whose API key the bridge uses (cached in memory and Redis)."""
        if self._me:
            return self._me
        with self._lock:
            if not self._me:
                cached = self.state.cached("me")
                if not cached:
                    me = self.client.obj("GET", "/api/v2/agents/me", what="Freshdesk agents/me")
                    if not isinstance(me.get("id"), int):
                        raise PermanentError("Freshdesk agents/me: the API key maps to no agent")
                    cached = str(me["id"])
                    self.state.cache("me", cached)
                self._me = cached
        return self._me

    # -- Botpress -> Freshdesk ----------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        """The end user's contact, found or created by `unique_external_id` (the bridge's
        user id).

        Creation is its own idempotency check: a contact that already holds the id (an
        earlier attempt landed, or a returning user) is refused with 409 and named in the
        answer. The e-mail is the end user's own claim: Freshdesk refuses a second
        contact with an address someone holds (any contact or agent), so the contact is
        then made without it and never merged into that account.
        """
        name = (user.name.strip() or user.email.strip() or f"Botpress user {user.id}")[:_NAME_MAX]
        fields: Json = {"name": name, "unique_external_id": user.id}
        email = _email(user.email)
        if email:
            fields["email"] = email
        known = user.helpdesk_id
        cid = self._contact(fields, user.id)
        if known == cid and not maybe_applied:
            # Sent again with the contact known: an update (Botpress renamed the user). Only
            # the name: a changed e-mail could name another account's address.
            self.client.obj(
                "PUT",
                f"/api/v2/contacts/{_int_id(cid, 'contact')}",
                what="Freshdesk update contact",
                body={"name": name},
            )
        return cid

    def _contact(self, fields: Json, external_id: str) -> str:
        try:
            data = self.client.obj(
                "POST", "/api/v2/contacts", what="Freshdesk create contact", body=fields
            )
        except PermanentError as exc:
            if exc.status != 409:
                raise
            clash = {str(e.get("field")): e for e in errors(exc.response)}
            if "unique_external_id" in clash:
                return self._existing_contact(clash["unique_external_id"], external_id)
            if "email" in clash and "email" in fields:
                log.warning(
                    "freshdesk: the end user's e-mail belongs to another Freshdesk contact "
                    "or agent; the contact is created without it",
                    extra={"user": external_id},
                )
                return self._contact({k: v for k, v in fields.items() if k != "email"}, external_id)
            raise
        cid = data.get("id")
        if not isinstance(cid, int):
            raise PermanentError("Freshdesk create contact: no contact id in the answer")
        return str(cid)

    def _existing_contact(self, clash: Json, external_id: str) -> str:
        held = (clash.get("additional_info") or {}).get("user_id")
        if isinstance(held, int):
            return str(held)
        found = self.client.rows(
            "/api/v2/contacts",
            what="Freshdesk find contact",
            params={"unique_external_id": external_id},
        )
        ids = [c["id"] for c in found if c.get("unique_external_id") == external_id]
        if not ids or not isinstance(ids[0], int):
            raise TransientError(f"Freshdesk: contact {external_id} exists but was not found")
        return str(ids[0])

    def _placeholder(self) -> str:
        cached = self.state.cached("placeholder")
        if cached:
            return cached
        cid = self._contact(
            {"name": PLACEHOLDER_NAME, "unique_external_id": PLACEHOLDER_ID}, PLACEHOLDER_ID
        )
        self.state.cache("placeholder", cid)
        return cid

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        # Freshdesk has no idempotency keys: a retry looks for the ticket's tag first.
        if maybe_applied and (found := self._find_ticket(conv)):
            return found
        subject = (request.title or conv.title).strip() or "Botpress conversation"
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1] + "…"
        body = render.history_text(
            request.description or conv.description,
            [(h.text, h.author, h.timestamp) for h in request.history],
        )
        requester = ""
        if request.requester is not None:
            # The core records this user as the requester: the ticket must name them now,
            # as no later message will change it.
            requester = request.requester.helpdesk_id or self.upsert_user(
                request.requester, maybe_applied=maybe_applied
            )
        ticket: Json = {
            "subject": subject,
            "description": as_html(body),
            "requester_id": _int_id(requester or self._placeholder(), "requester"),
            "status": STATUS_OPEN,
            "priority": PRIORITY_LOW,
            "source": SOURCE_CHAT,
            "tags": [TAG, CONV_TAG.format(conv.id)],
        }
        data = self.client.obj(
            "POST", "/api/v2/tickets", what="Freshdesk create ticket", body=ticket
        )
        tid = data.get("id")
        if not isinstance(tid, int):
            raise PermanentError("Freshdesk create ticket: no ticket id in the answer")
        return str(tid)

    def _find_ticket(self, conv: Conversation) -> str | None:
        """The ticket tagged with the conversation's id, among those updated since the
        conversation began (the ticket list reads the database: no search index lag)."""
        marker = CONV_TAG.format(conv.id).lower()
        params: dict[str, str | int] = {
            "updated_since": _iso(conv.created_at - 300),
            "order_by": "created_at",
            "order_type": "asc",
            "per_page": PER_PAGE,
        }
        for page in range(1, MAX_PAGES + 1):
            rows = self.client.rows(
                "/api/v2/tickets",
                what="Freshdesk find ticket by tag",
                params={**params, "page": page},
            )
            for t in rows:
                tags = [str(x).lower() for x in t.get("tags") or []]
                if marker in tags and isinstance(t.get("id"), int):
                    return str(t["id"])
            if len(rows) < PER_PAGE:
                break
        return None

    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        """One note for the batch: the end user's as an incoming public note by their
        contact (it reads as the customer's message), the bot's as a private note by the
        bridge's agent starting with BOT_PREFIX (internal: Freshdesk never e-mails it to the
        requester, and agents see it is not theirs)."""
        tid = self._ticket_id(conv)
        fields: dict[str, str] = {}
        if author.kind == "end_user":
            if author.user is None:
                raise PermanentError("an end-user message came without its user record")
            contact = author.user.helpdesk_id or self.upsert_user(
                author.user, maybe_applied=maybe_applied
            )
            if not conv.requester:
                # The placeholder contact requested the ticket until now (idempotent).
                self.client.obj(
                    "PUT",
                    f"/api/v2/tickets/{tid}",
                    what="Freshdesk set requester",
                    body={"requester_id": _int_id(contact, "end user")},
                )
            fields = {"private": "false", "incoming": "true", "user_id": contact}
        else:
            fields = {"private": "true", "incoming": "false"}
        if maybe_applied:
            # An earlier try may have landed, perhaps with fewer messages than this batch.
            messages = messages[self._already_sent(tid, author.kind, fields, messages) :]
            if not messages:
                return
        rendered = _rendered(author.kind, messages)
        files, failed = self._download_all(rendered.files)
        note = self._note(tid, rendered.body(failed), fields, files)
        self.state.remember_written(tid, [note])

    def _note(
        self, tid: str, text: str, fields: Mapping[str, str], files: Sequence[FormField]
    ) -> int:
        """Write one note; returns its id. JSON without files, multipart with them."""
        what = "Freshdesk add note"
        path = f"/api/v2/tickets/{tid}/notes"
        if files:
            form: list[FormField] = [("body", as_html(text)), *fields.items(), *files]
            data = self.client.obj("POST", path, what=what, form=form)
        else:
            body: Json = {"body": as_html(text)}
            body["private"] = fields.get("private") == "true"
            if "incoming" in fields:
                body["incoming"] = fields["incoming"] == "true"
            if "user_id" in fields:
                body["user_id"] = _int_id(fields["user_id"], "note author")
            data = self.client.obj("POST", path, what=what, body=body)
        nid = data.get("id")
        if not isinstance(nid, int):
            raise PermanentError(f"{what}: no conversation id in the answer")
        return nid

    def _already_sent(
        self,
        tid: str,
        kind: str,
        fields: Mapping[str, str],
        messages: Sequence[OutboundMessage],
    ) -> int:
        """How many of `messages` (a leading part) the author's latest notes already hold.

        Earlier tries may have landed as one note or several (each retry writes what is
        missing), so the author's notes since the first message reached the bridge are
        matched, the last ones joined, against the batch's leading messages. Only notes
        made since then count: an earlier identical text ("yes") is never taken for this.
        """
        entries = self._conversations(tid, 1)[0]
        since = int(messages[0].at) - 1  # Freshdesk's timestamps have whole seconds
        mine = self._mine_test(kind, fields)
        notes = [c for c in entries if mine(c) and _epoch(c.get("created_at")) >= since]
        texts = [_note_text(kind, c) for c in notes]
        for k in range(len(messages), 0, -1):
            rendered = render.render_all([(m.message_type, m.payload) for m in messages[:k]])
            want = render.normalize(rendered.body())
            for j in range(len(texts)):
                got = "\n\n".join(texts[j:])
                for ref in rendered.files:
                    got = got.replace(ref.fallback, "")
                if render.normalize(got) == want:
                    self.state.remember_written(tid, [c["id"] for c in notes[j:]])
                    return k
        return 0

    def _mine_test(self, kind: str, fields: Mapping[str, str]) -> Callable[[Json], bool]:
        if kind == "end_user":
            uid = fields["user_id"]
            return lambda c: str(c.get("user_id")) == uid and bool(c.get("incoming"))
        me = self.api_agent_id()
        return lambda c: (
            str(c.get("user_id")) == me
            and bool(c.get("private"))
            and str(c.get("body_text") or "").lstrip().startswith(render.BOT_PREFIX)
        )

    def _download_all(self, refs: Sequence[render.FileRef]) -> tuple[list[FormField], set[int]]:
        """The files to attach as `attachments[]` parts, and the indexes linked instead."""
        parts: list[FormField] = []
        failed: set[int] = set()
        total = 0
        # One deadline for all of them: the delivery must end well within its lease.
        deadline = time.monotonic() + self.fetcher.policy.deadline
        for i, ref in enumerate(refs):
            left = self.config.max_attachment_bytes - total
            got = self._download(ref, deadline, left) if left > 0 else None
            if got is None:
                failed.add(i)
                continue
            content, ctype = got
            total += len(content)
            parts.append(("attachments[]", (ref.name, ctype, content)))
        return parts, failed

    def _download(
        self, ref: render.FileRef, deadline: float, max_bytes: int
    ) -> tuple[bytes, str] | None:
        try:
            got = self.fetcher.fetch(ref.url, deadline=deadline, max_bytes=max_bytes)
        except FetchError as exc:
            # Never the query string: a chat message's URL may carry a token in it.
            log.warning(
                "freshdesk: %s not attached (%s); linking %s",
                ref.name,
                exc.reason,
                loggable(ref.url),
            )
            return None
        ctype = got.content_type
        if not ctype or ctype == "application/octet-stream":
            ctype = mimetypes.guess_type(ref.name)[0] or "application/octet-stream"
        return got.content, ctype

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        """Resolve the ticket (status 4) and leave a private note; when Freshdesk refuses to
        resolve it (a field required at resolution is empty, a validation rule), tag it
        ENDED_TAG and leave the note saying why: it stays open for an agent, and the close
        still counts as delivered.

        A retry writes no second note: the note is written only when the ticket holds none
        of the bridge's closing notes yet.
        """
        tid = self._ticket_id(conv)
        ticket = self._ticket(tid)
        tags = [str(t) for t in ticket.get("tags") or []]
        ours = self.state.closed_by_bridge(tid)
        if (ticket.get("status") in ENDED or ENDED_TAG in tags) and not ours:
            return  # ended by an agent before the bot did
        # Flagged first, so the resolution this causes is never reported as an agent's.
        self.state.mark_closed_by_bridge(tid)
        note = CLOSE_NOTE
        if ENDED_TAG in tags:
            note = LEFT_NOTE.format(why="see the ticket's fields")
        elif ticket.get("status") not in ENDED:
            try:
                self.client.obj(
                    "PUT",
                    f"/api/v2/tickets/{tid}",
                    what="Freshdesk resolve ticket",
                    body={"status": STATUS_RESOLVED},
                )
            except PermanentError as exc:
                if exc.status not in REFUSED:
                    self.state.clear_closed_by_bridge(tid)
                    raise
                note = self._leave_for_agent(tid, tags, exc)
        if not self._has_closing_note(tid):
            self.state.remember_written(tid, [self._note(tid, note, {"private": "true"}, [])])

    def _leave_for_agent(self, tid: str, tags: list[str], refused: PermanentError) -> str:
        """Tag the ticket ENDED_TAG (keeping its tags); returns the note to leave."""
        why = refusal(refused.response)
        log.warning(
            "freshdesk: ticket %s cannot be resolved (%s); left for an agent, tagged %s",
            tid,
            why,
            ENDED_TAG,
            extra={"ticket": tid},
        )
        # `tags` replaces the ticket's tags (Update a Ticket): the ones it had are kept.
        self.client.obj(
            "PUT",
            f"/api/v2/tickets/{tid}",
            what="Freshdesk tag ticket left for an agent",
            body={"tags": [*tags, ENDED_TAG]},
        )
        return LEFT_NOTE.format(why=why)

    def _has_closing_note(self, tid: str) -> bool:
        me = self.api_agent_id()
        entries = self._conversations(tid, 1)[0]
        return any(
            str(c.get("user_id")) == me
            and c.get("private")
            and str(c.get("body_text") or "").lstrip().startswith(NOTE_START)
            for c in entries
        )

    # -- Freshdesk -> Botpress ----------------------------------------------------------
    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        """Agents' public replies and notes, the responder and the resolution since `cursor`.

        Never sent: private notes, incoming entries (the requester's, which is what the
        bridge writes for the end user), the bridge's own notes (remembered by id, and any
        private note by the bridge's agent), and anything by the ticket's requester.
        """
        tid = self._ticket_id(conv)
        cur = Cursor.parse(cursor)
        ticket = self._ticket(tid)
        entries, last_page = self._conversations(tid, cur.page)
        written = self.state.written(tid)
        requester = str(ticket.get("requester_id") or "")
        me = self.api_agent_id()

        items: list[Change] = []
        responder = str(ticket.get("responder_id") or "")
        if responder and responder != cur.responder:
            items.append(AgentAssigned(agent_id=responder, agent_name=self._agent_name(responder)))

        last = cur.conversation_id
        for c in entries:
            cid = c["id"]
            if cid <= cur.conversation_id:
                continue
            last = max(last, cid)
            author = str(c.get("user_id") or "")
            if (
                c.get("private", True)
                or c.get("incoming")
                or cid in written
                or author in ("", requester)
                or (author == me and c.get("source") == SOURCE_NOTE)
            ):
                continue
            items += _agent_messages(c, author, self._agent_name(author), self._file_url(tid))

        ended = ticket.get("status") in ENDED
        if ended and not cur.closed and not self.state.closed_by_bridge(tid):
            items.append(TicketClosed())
        page = last_page if last > cur.conversation_id else cur.page
        return Changes(items=items, cursor=Cursor(last, page, responder, ended).dump())

    def _file_url(self, tid: str) -> Callable[[Json], str]:
        """Where the end user gets an agent's attachment: the bridge's own link when
        PUBLIC_BASE_URL is set (Freshdesk's `attachment_url` expires within minutes), else
        Freshdesk's URL as it is."""

        def url(attachment: Json) -> str:
            given = str(attachment.get("attachment_url") or "")
            aid, size = attachment.get("id"), attachment.get("size")
            if not given or not self.settings.public_base_url or not isinstance(aid, int):
                return given
            if isinstance(size, int) and size > self.config.max_attachment_bytes:
                return given  # not relayed: the short-lived URL is all there is
            return files.link(
                self.settings, int(tid), aid, now=self.clock(), ttl=self.config.file_link_ttl
            )

        return url

    def agent_attachment(self, tid: str, attachment_id: int) -> Json | None:
        """An attachment of an agent's public entry on the ticket, with a fresh
        `attachment_url`; None when there is none such (private notes' files never)."""
        for c in self._conversations(tid, 1)[0]:
            if c.get("private", True) or c.get("incoming"):
                continue
            for a in c.get("attachments") or []:
                if isinstance(a, dict) and a.get("id") == attachment_id:
                    return a if a.get("attachment_url") else None
        return None

    def blueprint(self) -> Blueprint:
        """The bridge's links to agents' files (/files/<token>)."""
        return files.blueprint(self)

    def _agent_name(self, agent_id: str) -> str:
        """An agent's name (cached a day); "" when Freshdesk will not say."""
        known = self.state.agent_name(agent_id)
        if known is not None:
            return known
        try:
            data = self.client.obj(
                "GET", f"/api/v2/agents/{_int_id(agent_id, 'agent')}", what="Freshdesk agent"
            )
        except PermanentError:
            # Not an agent (a contact), or not readable: no name, and no asking again today.
            self.state.set_agent_name(agent_id, "")
            return ""
        name = str((data.get("contact") or {}).get("name") or "")
        self.state.set_agent_name(agent_id, name)
        return name

    def _ticket(self, tid: str) -> Json:
        return self.client.obj("GET", f"/api/v2/tickets/{tid}", what="Freshdesk view ticket")

    def _conversations(self, tid: str, first_page: int) -> tuple[list[Json], int]:
        """The ticket's conversations from page `first_page` on (oldest first), and the
        number of the last page read."""
        out: list[Json] = []
        page = first_page
        for page in range(first_page, first_page + MAX_PAGES):
            rows = self.client.rows(
                f"/api/v2/tickets/{tid}/conversations",
                what="Freshdesk list conversations",
                params={"page": page, "per_page": PER_PAGE},
            )
            out += [r for r in rows if isinstance(r.get("id"), int)]
            if len(rows) < PER_PAGE:
                break
        else:
            log.warning("freshdesk: ticket %s: over %d pages of conversations", tid, MAX_PAGES)
        if page > first_page and not out:
            page -= 1
        return out, page

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        tokens = webhook.expected_tokens(self.settings, self.config.webhook_token)
        return webhook.verify(url_token, body, tokens=tokens)

    def changed_tickets(self) -> list[str] | None:
        """The bridge's tickets updated since the last poll (`updated_since`, oldest first);
        None (ring every open conversation) on the first poll."""
        cursor = self.state.poll_cursor()
        if not cursor:
            self.state.set_poll_cursor(_iso(self.clock() - max(2 * self.poll_interval, 300)))
            return None
        ids: list[str] = []
        newest = cursor
        for page in range(1, POLL_PAGES + 1):
            rows = self.client.rows(
                "/api/v2/tickets",
                what="Freshdesk list updated tickets",
                params={
                    "updated_since": cursor,
                    "order_by": "updated_at",
                    "order_type": "asc",
                    "per_page": PER_PAGE,
                    "page": page,
                },
                patient=True,
            )
            for t in rows:
                tid = str(t.get("id", ""))
                newest = max(newest, str(t.get("updated_at") or ""))
                if tid and tid not in ids and self.store.conversation_for_ticket(tid):
                    ids.append(tid)
            if len(rows) < PER_PAGE:
                break
        # The same second again next time: a ticket updated later in it is not missed.
        self.state.set_poll_cursor(newest)
        return ids

    def check(self) -> list[str]:
        try:
            me = self.client.obj("GET", "/api/v2/agents/me", what="Freshdesk agents/me")
        except DeliveryError as exc:
            detail = f": {exc.response[:300]}" if exc.response else ""
            return [
                f"Freshdesk at {self.config.base_url} refused the API key ({exc.reason}){detail}"
            ]
        if not isinstance(me.get("id"), int):
            return [f"Freshdesk at {self.config.base_url}: the API key maps to no agent"]
        # Whether the automation rule exists cannot be read through the API: nothing to say.
        return []

    # -- helpers ------------------------------------------------------------------------
    def _ticket_id(self, conv: Conversation) -> str:
        if not conv.ticket_id:
            raise TransientError(f"conversation {conv.id} has no Freshdesk ticket yet")
        return conv.ticket_id


def budget_of(store: Store, config: FreshdeskConfig) -> Budget:
    """The account's API budget, shared through `store`'s Redis by every process."""
    return Budget(
        store.redis,
        store.key("adapter", "freshdesk", "budget"),
        config.rate_limit,
        label="Freshdesk",
        setting="FRESHDESK_RATE_LIMIT",
    )


#: One plain address: what the bridge passes to Freshdesk as a contact's e-mail.
_EMAIL = re.compile(r"[^@\s\"'(),:;<>\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}")


def _email(value: str) -> str:
    value = value.strip()
    return value if _EMAIL.fullmatch(value) else ""


def _agent_messages(
    entry: Json, author: str, name: str, file_url: Callable[[Json], str] | None = None
) -> list[AgentMessage]:
    """An agent's reply as Botpress messages: its text, then each attachment, at the URL
    `file_url` gives (else its `attachment_url`, which expires: docs/freshdesk.md)."""
    out: list[AgentMessage] = []
    text = str(entry.get("body_text") or "").strip()
    if text:
        out.append(AgentMessage(author, "text", {"text": text}, name))
    for a in entry.get("attachments") or []:
        if not isinstance(a, dict) or not a.get("attachment_url"):
            continue
        url = file_url(a) if file_url is not None else str(a["attachment_url"])
        payload: dict[str, Any]
        if str(a.get("content_type", "")).startswith("image/"):
            out.append(AgentMessage(author, "image", {"imageUrl": url}, name))
        else:
            payload = {"fileUrl": url, "title": str(a.get("name") or "")}
            out.append(AgentMessage(author, "file", payload, name))
    return out


def _note_text(kind: str, entry: Json) -> str:
    """A note's text as the bridge wrote it, without the bot's prefix."""
    text = str(entry.get("body_text") or "")
    return text.lstrip().removeprefix(render.BOT_PREFIX).lstrip() if kind != "end_user" else text


def _rendered(kind: str, messages: Sequence[OutboundMessage]) -> render.Rendered:
    """The note text of consecutive messages of one author (the bot's are marked)."""
    rendered = render.render_all([(m.message_type, m.payload) for m in messages])
    if kind != "end_user":
        rendered.text = f"{render.BOT_PREFIX} {rendered.text}"
    return rendered
