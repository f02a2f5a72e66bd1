"""Zendesk Support behind the bridge's helpdesk interface (HELPDESK=zendesk)."""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

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
from bridge.helpdesks.zendesk import files, webhook
from bridge.helpdesks.zendesk.client import Json, ZendeskClient
from bridge.helpdesks.zendesk.config import ZendeskConfig, config_problems
from bridge.helpdesks.zendesk.state import AdapterState, Cursor
from bridge.storage import Conversation, Store, User

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger(__name__)

#: Every ticket the bridge creates carries this tag; the setup trigger filters on it.
TAG = "botpress_hitl"
#: A ticket the bot ended but the bridge could not solve carries this tag (left for an agent).
ENDED_TAG = "hitl_ended"
CLOSE_NOTE = "The Botpress bot closed this hand-off (the conversation went back to the bot)."
LEFT_NOTE = (
    "The Botpress bot ended this hand-off (the conversation went back to the bot). "
    "The bridge could not solve the ticket ({why}), so it is left for an agent."
)
REFUSAL_MAX = 300
SUBJECT_MAX = 150
COMMENTS_PAGE = 100
MAX_COMMENT_PAGES = 50
EXPORT_PAGES = 5
#: Tickets per `tickets/show_many` call: Zendesk's maximum.
SHOW_MANY = 100
ENDED = ("solved", "closed")
#: The author id of Zendesk's system user: comments made by triggers and automations.
SYSTEM_USER = "-1"
#: How long after its comment an attachment Zendesk has not scanned for malware yet is
#: waited for (the scan usually takes seconds), and how often the read is tried meanwhile.
SCAN_WAIT = 20.0
SCAN_RETRY = 3.0
#: The internal note that tells agents which attachments were held back, one line each.
MALWARE_NOTE = (
    "Not sent to the Botpress end user: Zendesk found malware in these attachments of "
    "public comments."
)
_NOTED = re.compile(r"\(attachment (\d+)\)")


def _int_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise PermanentError(f"{what} {value!r} is not a Zendesk id") from exc


class ZendeskHelpdesk(Helpdesk):
    """Tickets, comments and end users in one Zendesk Support account."""

    name = "zendesk"
    # Zendesk allows 30 updates per 10 minutes per ticket and user: batch generously.
    max_batch = 20

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        client: ZendeskClient | None = None,
        clock: Callable[[], float] = time.time,
        fetcher: Fetcher | None = None,
    ) -> None:
        super().__init__(settings, store)
        self.config = ZendeskConfig.from_environ(settings.environ)
        self.state = AdapterState(store)
        self.client = client or ZendeskClient(
            self.config,
            timeout=settings.http_timeout,
            concurrency=settings.pumps,
            budget=budget_of(store, self.config),
            tokens=self.state,
        )
        if self.config.auth == "oauth_token":
            # Zendesk's newer OAuth clients issue tokens that die after 30 minutes, and a
            # fixed token cannot be renewed.
            log.warning(
                "zendesk: ZENDESK_OAUTH_TOKEN is used as it is and never renewed: it must be "
                "a token that does not expire (an OAuth client and `hitl-bridge zendesk "
                "authorize` renew theirs; docs/zendesk.md)"
            )
        # Files named in messages, fetched by the one SSRF-safe fetcher. One per adapter,
        # so per worker process: its bound on downloads in flight keeps pumps free.
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

    # -- who the bridge is in Zendesk ---------------------------------------------------
    def api_user_id(self) -> str:
        """The id of the user the bridge authenticates as (cached in memory and Redis)."""
        if self._me:
            return self._me
        # One lookup per process: hundreds of pumps asking at once spent the API budget on
        # the same users/me (measured: 174 calls in the budget benchmark).
        with self._me_lock:
            if not self._me:
                cached = self.state.api_user_id()
                if cached:
                    self._me = cached
                else:
                    user = (
                        self.client.call("GET", "/api/v2/users/me", what="Zendesk users/me").get(
                            "user"
                        )
                        or {}
                    )
                    if not user.get("id"):
                        raise PermanentError("Zendesk users/me: the credentials map to no user")
                    self._me = str(user["id"])
                    self.state.set_api_user_id(self._me)
        return self._me

    # -- Botpress -> Zendesk ------------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        """Create or update the end user, identified by the bridge's user id (external_id).

        The e-mail is the end user's own word. Zendesk's create_or_update matches an existing
        user by e-mail too, whatever their role: typed an agent's address, the chat would be
        posted as that agent and the agent renamed. So the e-mail goes with the user only
        when Zendesk says every account holding it is an end user's; when nobody holds it, it
        is added to the user after creation, which Zendesk refuses (422) if someone took it
        meanwhile (its search lags new accounts); when a non-end-user holds it, never.
        """
        # No `role`: new users default to end-user, and sending it would change a match's.
        fields: Json = {
            "external_id": user.id,
            "name": user.name.strip() or user.email.strip() or f"Botpress user {user.id}",
        }
        if user.picture_url.strip():
            fields["remote_photo_url"] = user.picture_url.strip()
        email = _email(user.email)
        owners = self._email_owners(email) if email else None
        if owners and all(role == "end-user" for role in owners):
            fields["email"] = email
            fields["skip_verify_email"] = True
        elif owners:
            log.warning(
                "zendesk: the end user's e-mail belongs to a Zendesk %s account; the end user "
                "is created without it",
                "/".join(sorted({r for r in owners if r != "end-user"})),
                extra={"user": user.id},
            )
        # create_or_update is idempotent by external_id, so maybe_applied needs no check.
        data = self.client.call(
            "POST",
            "/api/v2/users/create_or_update",
            what="Zendesk create_or_update user",
            body={"user": fields},
        )
        found = data.get("user") or {}
        uid = found.get("id")
        if not isinstance(uid, int):
            raise PermanentError("Zendesk create_or_update user: no user id in the answer")
        role = found.get("role")
        if role not in (None, "end-user"):
            # Only a race (promoted between the search and the update) gets here: never
            # speak as that account.
            raise PermanentError(
                f"Zendesk matched end user {user.id} to user {uid}, whose role is {role!r}; "
                "the bridge never posts as an agent"
            )
        if email and owners == [] and str(found.get("email") or "").lower() != email.lower():
            self._add_email(str(uid), email, user.id)
        return str(uid)

    def _email_owners(self, email: str) -> list[str]:
        """The roles of the Zendesk users holding `email` (any of their identities)."""
        data = self.client.call(
            "GET",
            "/api/v2/users/search",
            what="Zendesk search users by e-mail",
            params={"query": f"email:{email}"},
        )
        return [str(u.get("role") or "") for u in data.get("users") or [] if isinstance(u, dict)]

    def _add_email(self, uid: str, email: str, bridge_user: str) -> None:
        try:
            self.client.call(
                "POST",
                f"/api/v2/users/{uid}/identities",
                what="Zendesk add e-mail identity",
                body={"identity": {"type": "email", "value": email, "skip_verify_email": True}},
            )
        except PermanentError as exc:
            # Taken by another account since the search (or refused as malformed): the end
            # user goes on without it, never merged into that account.
            log.warning(
                "zendesk: the end user's e-mail was not added (%s)",
                exc.reason,
                extra={"user": bridge_user},
            )

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        # Idempotency keys live two hours; a ticket found by external_id outlives them.
        if maybe_applied and (found := self._find_ticket(conv.id)):
            return found
        subject = (request.title or conv.title).strip() or "Botpress conversation"
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1] + "…"
        body = render.history_text(
            request.description or conv.description,
            [(h.text, h.author, h.timestamp) for h in request.history],
        )
        # Built only from the request and the conversation, so a retry sends the same bytes.
        ticket: Json = {
            "subject": subject,
            "comment": {"body": body, "public": True},
            "external_id": conv.id,
            "tags": [TAG],
        }
        if request.requester is not None and request.requester.helpdesk_id:
            ticket["requester_id"] = _int_id(request.requester.helpdesk_id, "requester")
        try:
            data = self.client.call(
                "POST",
                "/api/v2/tickets",
                what="Zendesk create ticket",
                body={"ticket": ticket},
                headers={"Idempotency-Key": idempotency_key},
            )
        except PermanentError as exc:
            # Same key, different body (the requester became known in between): the first
            # request created the ticket.
            if "idempot" in (exc.response or "").lower() and (found := self._find_ticket(conv.id)):
                return found
            raise
        tid = (data.get("ticket") or {}).get("id")
        if not isinstance(tid, int):
            raise PermanentError("Zendesk create ticket: no ticket id in the answer")
        self._remember_audit(str(tid), data)
        return str(tid)

    def _find_ticket(self, external_id: str) -> str | None:
        data = self.client.call(
            "GET",
            "/api/v2/tickets",
            what="Zendesk find ticket by external_id",
            params={"external_id": external_id},
        )
        ids = [
            t["id"]
            for t in data.get("tickets") or []
            if t.get("external_id") == external_id and isinstance(t.get("id"), int)
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
        ticket: Json = {}
        comment: Json = {"public": True}
        if author.kind == "end_user":
            if author.user is None:
                raise PermanentError("an end-user message came without its user record")
            author_id = author.user.helpdesk_id or self.upsert_user(
                author.user, maybe_applied=maybe_applied
            )
            comment["author_id"] = _int_id(author_id, "end user")
            if not conv.requester:
                ticket["requester_id"] = comment["author_id"]
        else:
            author_id = self.api_user_id()
        if maybe_applied:
            # An earlier try may have landed, perhaps with fewer messages than this batch.
            messages = messages[self._already_sent(tid, author_id, author.kind, messages) :]
            if not messages:
                return
        rendered = _rendered(author.kind, messages)
        uploads, failed = self._attach(rendered.files)
        comment["body"] = rendered.body(failed)
        if uploads:
            comment["uploads"] = uploads
        ticket["comment"] = comment
        data = self.client.call(
            "PUT", f"/api/v2/tickets/{tid}", what="Zendesk add comment", body={"ticket": ticket}
        )
        self._remember_audit(tid, data)

    def _already_sent(
        self, tid: str, author_id: str, kind: str, messages: Sequence[OutboundMessage]
    ) -> int:
        """How many of `messages` (a leading part) the author's latest comment already holds.

        Only a comment made since the first message reached the bridge counts, so an
        earlier identical text ("yes") is never mistaken for this one.
        """
        data = self.client.call(
            "GET",
            f"/api/v2/tickets/{tid}/comments",
            what="Zendesk list comments",
            params={"sort": "-created_at", "page[size]": COMMENTS_PAGE},
        )
        since = int(messages[0].at)  # Zendesk's timestamps have whole seconds
        latest = next(
            (c for c in data.get("comments") or [] if str(c.get("author_id")) == author_id), None
        )
        if latest is None or _epoch(latest.get("created_at")) < since:
            return 0
        for k in range(len(messages), 0, -1):
            rendered = _rendered(kind, messages[:k])
            body = str(latest.get("body") or "")
            for ref in rendered.files:
                body = body.replace(ref.fallback, "")
            if render.normalize(body) == render.normalize(rendered.body()):
                if isinstance(latest.get("id"), int):
                    self.state.remember_written(tid, [latest["id"]])
                return k
        return 0

    def _attach(self, files: Sequence[render.FileRef]) -> tuple[list[str], set[int]]:
        """Upload each file; returns the upload tokens and the indexes that fell back to links."""
        token = ""
        failed: set[int] = set()
        # One budget for all of them: the delivery must end well within its lease.
        deadline = time.monotonic() + self.fetcher.policy.deadline
        for i, ref in enumerate(files):
            got = self._download(ref, deadline)
            if got is None:
                failed.add(i)
                continue
            content, content_type = got
            params: dict[str, str | int] = {"filename": ref.name}
            if token:
                params["token"] = token  # several files share one upload token
            try:
                data = self.client.call(
                    "POST",
                    "/api/v2/uploads",
                    what="Zendesk upload",
                    params=params,
                    data=content,
                    headers={"Content-Type": content_type},
                )
            except PermanentError as exc:
                log.warning("zendesk: upload of %s refused (%s); linking it", ref.name, exc.reason)
                failed.add(i)
                continue
            token = str((data.get("upload") or {}).get("token") or token)
            if not token:
                failed.add(i)
        return ([token] if token else []), failed

    def _download(self, ref: render.FileRef, deadline: float) -> tuple[bytes, str] | None:
        """The file's bytes and content type; None (link it instead) when not fetched."""
        try:
            got = self.fetcher.fetch(
                ref.url, deadline=deadline, max_bytes=self.config.max_attachment_bytes
            )
        except FetchError as exc:
            # Never the query string: a chat message's URL may carry a token in it.
            log.warning(
                "zendesk: %s not attached (%s); linking %s", ref.name, exc.reason, loggable(ref.url)
            )
            return None
        content_type = got.content_type
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(ref.name)[0] or "application/octet-stream"
        return got.content, content_type

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        """Solve the ticket with an internal note; when Zendesk refuses the solve (422: the
        bridge's user is outside the ticket's group, a field required to solve is empty),
        leave the note, tag the ticket ENDED_TAG and leave it open for an agent instead.

        Either way one update carries the note, and a retry finds the ticket solved or
        tagged and writes nothing: at most one note, whatever `maybe_applied` says.
        """
        tid = self._ticket_id(conv)
        ticket = self._ticket(tid)[0]
        if ticket.get("status") in ENDED or ENDED_TAG in (ticket.get("tags") or []):
            return  # already ended: by an agent, or by an earlier attempt of this close
        update: Json = {"status": "solved", "comment": {"body": CLOSE_NOTE, "public": False}}
        if not ticket.get("assignee_id"):
            # Zendesk refuses `solved` without an assignee.
            update["assignee_id"] = _int_id(self.api_user_id(), "API user")
        # Flagged first, so the solve this causes is never reported back as an agent's. It
        # stays when the ticket is left for an agent: their later solve is not news either.
        self.state.mark_closed_by_bridge(tid)
        try:
            try:
                data = self.client.call(
                    "PUT",
                    f"/api/v2/tickets/{tid}",
                    what="Zendesk solve ticket",
                    body={"ticket": update},
                )
            except PermanentError as exc:
                if exc.status != 422:
                    raise
                data = self._leave_for_agent(tid, ticket, exc)
        except PermanentError:
            self.state.clear_closed_by_bridge(tid)
            raise
        self._remember_audit(tid, data)

    def _leave_for_agent(self, tid: str, ticket: Json, refused: PermanentError) -> Json:
        """The internal note and ENDED_TAG in one update; no status, no assignee."""
        why = _refusal(refused.response)
        log.warning(
            "zendesk: ticket %s cannot be solved (%s); left for an agent, tagged %s",
            tid,
            why,
            ENDED_TAG,
            extra={"ticket": tid},
        )
        tags = [str(t) for t in ticket.get("tags") or []]
        # `tags` replaces the ticket's tags (Update Ticket takes no `additional_tags`), so
        # the update is safe: Zendesk refuses it (409) if the ticket changed since read.
        fields: Json = {
            "comment": {"body": LEFT_NOTE.format(why=why), "public": False},
            "tags": [*tags, ENDED_TAG],
        }
        if ticket.get("updated_at"):
            fields |= {"safe_update": True, "updated_stamp": ticket["updated_at"]}
        try:
            return self.client.call(
                "PUT",
                f"/api/v2/tickets/{tid}",
                what="Zendesk leave ticket for an agent",
                body={"ticket": fields},
            )
        except PermanentError as exc:
            if exc.status == 409:
                # Read again on the next try, with whatever changed meanwhile.
                raise TransientError(
                    f"{exc.reason}: the ticket changed while the bridge ended the hand-off",
                    response=exc.response,
                    status=409,
                ) from exc
            raise

    # -- Zendesk -> Botpress ------------------------------------------------------------
    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        tid = self._ticket_id(conv)
        cur = Cursor.parse(cursor)
        ticket, users = self._ticket(tid)
        comments, comment_users, whole = self._comments(tid, cur.comment_id)
        users.update(comment_users)
        me = self.api_user_id()
        written = self.state.written(tid)
        requester = str(ticket.get("requester_id") or "")
        # Only a read that went back to the start holds the ticket's first comment.
        first_id = comments[0]["id"] if comments and whole else 0

        items: list[Change] = []
        assignee = str(ticket.get("assignee_id") or "")
        if assignee and assignee != cur.assignee and assignee != me:
            items.append(AgentAssigned(agent_id=assignee, agent_name=_name(users, assignee)))

        last = cur.comment_id
        flagged: list[Json] = []  # on the agents' comments read now
        for c in comments:
            cid = c["id"]
            author = str(c.get("author_id") or "")
            if (
                not c.get("public", True)
                or cid in written
                or cid == first_id  # the description the bridge wrote at creation
                or author in (me, requester, SYSTEM_USER, "")
                or (users.get(author) or {}).get("role") == "end-user"
            ):
                last = max(last, cid)
                continue
            flagged += [a for a in _attachments(c) if _malware(a)]
            if cid <= cur.comment_id:
                continue
            if self._scan_pending(c):
                # Nothing of this read is kept: the retry reads it all again, scanned.
                raise TransientError(
                    f"Zendesk has not scanned comment {cid}'s attachments for malware yet",
                    retry_after=SCAN_RETRY,
                )
            last = max(last, cid)
            items += _agent_messages(c, author, _name(users, author), self._file_url)
        # The note is passed over like everything the bridge writes: the cursor moves past it.
        last = max([last, *self._note_malware(tid, ticket, comments, flagged)])

        ended = ticket.get("status") in ENDED
        if ended and not cur.closed and not self.state.closed_by_bridge(tid):
            items.append(TicketClosed())
        return Changes(items=items, cursor=Cursor(last, assignee, ended).dump())

    def _file_url(self, attachment: Json) -> str:
        """Where the end user gets an attachment: its Zendesk link, or the bridge's own when
        the account requires sign-in to download attachments and PUBLIC_BASE_URL is set."""
        url = str(attachment.get("content_url") or "")
        aid, size = attachment.get("id"), attachment.get("size")
        if not url or not self.settings.public_base_url or not isinstance(aid, int):
            return url
        if isinstance(size, int) and size > self.config.max_attachment_bytes:
            log.warning("zendesk: attachment %s is over ZENDESK_MAX_ATTACHMENT_BYTES; linked", aid)
            return url
        if not self.private_attachments():
            return url
        return files.link(self.settings, aid, now=self.clock(), ttl=self.config.file_link_ttl)

    def private_attachments(self) -> bool:
        """Whether the account requires sign-in to download attachments.

        Zendesk's account setting (`tickets.private_attachments`, readable by agents) says
        so in one request, cached for all workers; probing each attachment's URL instead
        would cost a request per file and cannot tell "sign in" from other refusals. Refused
        (not readable), it counts as private: the bridge's links work either way.
        """
        known = self.state.private_attachments()
        if known is None:
            said = self._account_says_private()
            known = True if said is None else said
            self.state.set_private_attachments(known)
        return known

    def _account_says_private(self) -> bool | None:
        """The account's `tickets.private_attachments`, None when Zendesk refuses to say."""
        try:
            data = self.client.call(
                "GET", "/api/v2/account/settings", what="Zendesk account settings"
            )
        except PermanentError as exc:
            log.warning("zendesk: account settings not readable (%s)", exc.reason)
            return None
        tickets = (data.get("settings") or {}).get("tickets") or {}
        return tickets.get("private_attachments") is True

    def blueprint(self) -> Blueprint:
        """The links of agents' files on accounts with private attachments (/files/<token>)."""
        return files.blueprint(self)

    def _scan_pending(self, comment: Json) -> bool:
        """Whether an attachment of this recent comment awaits Zendesk's malware scan."""
        if self.clock() - _epoch(comment.get("created_at")) >= SCAN_WAIT:
            return False  # never scanned, it seems: sent as it is
        return any(a.get("malware_scan_result") == "not_scanned" for a in _attachments(comment))

    def _note_malware(
        self, tid: str, ticket: Json, comments: Sequence[Json], flagged: Sequence[Json]
    ) -> list[int]:
        """Tell the agents, in an internal note, which attachments were held back; the
        ids of the comments written.

        Each attachment is named in one note. A note comes after the comment it names, so
        a read that holds the comment holds the note too (the bridge's user's internal
        comments are read with the others) and writes nothing again. A note that failed is
        kept in Redis and written by the next read, which may not read the comment again.
        """
        me = self.api_user_id()
        noted: set[int] = set()
        for c in comments:
            body = str(c.get("body") or "")
            mine = str(c.get("author_id")) == me and not c.get("public", True)
            if mine and body.startswith(MALWARE_NOTE):
                noted.update(int(i) for i in _NOTED.findall(body))
        due = self.state.malware_notes_due(tid)
        named: dict[int, str] = {i: name for i, name in due.items() if i not in noted}
        for a in flagged:
            if isinstance(a.get("id"), int) and a["id"] not in noted:
                named.setdefault(a["id"], str(a.get("file_name") or ""))
        if ticket.get("status") == "closed":  # a closed ticket takes no notes
            self.state.malware_noted(tid, due)
            return []
        self.state.malware_noted(tid, [i for i in due if i not in named])
        if not named:
            return []
        lines = [f"{name or 'a file'} (attachment {i})" for i, name in named.items()]
        note = {"comment": {"body": "\n".join([MALWARE_NOTE, *lines]), "public": False}}
        try:
            data = self.client.call(
                "PUT", f"/api/v2/tickets/{tid}", what="Zendesk malware note", body={"ticket": note}
            )
        except DeliveryError as exc:
            # The agent's other messages go on; the next read of this ticket tries again.
            log.warning("zendesk: malware note not written (%s)", exc.reason)
            self.state.hold_malware_note(tid, named)
            return []
        self.state.malware_noted(tid, named)
        return self._remember_audit(tid, data)

    def _ticket(self, tid: str) -> tuple[Json, dict[str, Json]]:
        data = self.client.call(
            "GET", f"/api/v2/tickets/{tid}", what="Zendesk show ticket", params={"include": "users"}
        )
        ticket = data.get("ticket")
        if not isinstance(ticket, dict):
            raise TransientError("Zendesk show ticket: no ticket in the answer")
        return ticket, _users(data)

    def _comments(self, tid: str, since: int) -> tuple[list[Json], dict[str, Json], bool]:
        """The ticket's comments after comment `since` (0: all), oldest first, with the
        users who wrote them, and whether the read went back to the ticket's first comment.

        Read newest first, down to the page that shows a comment at or before `since`: a
        wake-up costs one request however long the ticket is. That page's older comments
        come along too; the caller passes over them.
        """
        comments: list[Json] = []
        users: dict[str, Json] = {}
        # Inline images (pasted into the text) are left out of `attachments` unless asked for.
        params: dict[str, str | int] = {
            "page[size]": COMMENTS_PAGE,
            "sort": "-created_at",
            "include": "users",
            "include_inline_images": "true",
        }
        whole = False
        for _ in range(MAX_COMMENT_PAGES):
            data = self.client.call(
                "GET",
                f"/api/v2/tickets/{tid}/comments",
                what="Zendesk list comments",
                params=params,
            )
            page = [c for c in data.get("comments") or [] if isinstance(c.get("id"), int)]
            comments += page
            users.update(_users(data))
            meta = data.get("meta") or {}
            after = meta.get("after_cursor")
            whole = not meta.get("has_more") or not after
            # Ids grow with time (the cursor relies on it): what follows is older still.
            if whole or (since and any(c["id"] <= since for c in page)):
                break
            params = {**params, "page[after]": str(after)}
        else:
            log.warning(
                "zendesk: ticket %s: over %d comments since the last read; the older are skipped",
                tid,
                COMMENTS_PAGE * MAX_COMMENT_PAGES,
                extra={"ticket": tid},
            )
        comments.sort(key=lambda c: (str(c.get("created_at") or ""), c["id"]))
        return comments, users, whole

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        # Zendesk signs every webhook: the signature is checked, a URL token adds nothing.
        return webhook.verify(headers, body, secret=self.config.webhook_secret, now=self.clock())

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return webhook.invocation_id(headers)

    def changed_tickets(self) -> list[str] | None:
        """Bridge tickets changed since the last poll, from the incremental ticket export.

        None (ring every open conversation) on the first poll. The export is for admins
        only: refused, the open tickets are read 100 at a time instead.
        """
        cursor = self.state.export_cursor()
        params: dict[str, str | int]
        if cursor:
            params = {"cursor": cursor}
        else:
            params = {"start_time": int(self.clock() - max(2 * self.poll_interval, 300))}
        ids: list[str] = []
        for _ in range(EXPORT_PAGES):
            try:
                data = self.client.call(
                    "GET",
                    "/api/v2/incremental/tickets/cursor.json",
                    what="Zendesk incremental ticket export",
                    params=params,
                    patient=True,
                )
            except PermanentError as exc:
                # Admins only: an agent's token reads the open tickets 100 at a time instead.
                log.warning(
                    "zendesk: incremental export refused (%s); reading open tickets instead",
                    exc.reason,
                )
                return self._changed_open_tickets()
            for t in data.get("tickets") or []:
                tid = str(t.get("id", ""))
                if tid and tid not in ids and self.store.conversation_for_ticket(tid):
                    ids.append(tid)
            after = data.get("after_cursor")
            if after:
                self.state.set_export_cursor(str(after))
                params = {"cursor": str(after)}
            if data.get("end_of_stream", True) or not after:
                break
        return ids if cursor else None

    def _changed_open_tickets(self) -> list[str]:
        """The bridge's open tickets whose `updated_at` moved since the last poll, read with
        `tickets/show_many` (100 a call) rather than two calls per ticket."""
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in self.store.open_conversations():
            pipe.hget(self.store.conv_key(cid), "ticket_id")
        tids = [str(t) for t in cast(list[str | None], pipe.execute()) if t]
        seen = self.state.seen_updates(tids)
        changed: list[str] = []
        now: dict[str, str] = {}
        for i in range(0, len(tids), SHOW_MANY):
            data = self.client.call(
                "GET",
                "/api/v2/tickets/show_many",
                what="Zendesk show many tickets",
                params={"ids": ",".join(tids[i : i + SHOW_MANY])},
                patient=True,
            )
            for t in data.get("tickets") or []:
                tid, updated = str(t.get("id", "")), str(t.get("updated_at") or "")
                if tid in seen and updated != seen[tid]:
                    changed.append(tid)
                    now[tid] = updated
        self.state.remember_updates(now)
        return changed

    def check(self) -> list[str]:
        problems: list[str] = []
        try:
            user = (
                self.client.call("GET", "/api/v2/users/me", what="Zendesk users/me").get("user")
                or {}
            )
        except DeliveryError as exc:
            detail = f": {exc.response[:300]}" if exc.response else ""
            return [
                f"Zendesk at {self.config.base_url} refused the credentials ({exc.reason}){detail}"
            ]
        if not user.get("id"):
            problems.append(
                f"Zendesk at {self.config.base_url} answered as the anonymous user: "
                "the credentials were not accepted"
            )
        elif user.get("role") not in ("agent", "admin"):
            problems.append(
                f"the Zendesk API user {user.get('email', '')} is {user.get('role')!r}; "
                "it must be an agent or admin"
            )
        if user.get("id") and not self.settings.public_base_url and self._check_private():
            problems.append(
                "this Zendesk account requires sign-in to download attachments (private "
                "attachments) and PUBLIC_BASE_URL is not set: agents' files go to end users "
                "as Zendesk links they cannot open; set PUBLIC_BASE_URL to where end users "
                "reach this bridge, and it serves them at <PUBLIC_BASE_URL>/files/..."
            )
        if not self.config.webhook_secret:
            tail = (
                f"agent replies arrive only by polling every {self.poll_interval:g}s"
                if self.poll_interval
                else "and polling is off: agent replies never arrive"
            )
            problems.append(
                f"ZENDESK_WEBHOOK_SECRET is not set (run `hitl-bridge zendesk setup`); {tail}"
            )
        return problems

    def _check_private(self) -> bool:
        """For `check`: whether the account says, now, that its attachments are private."""
        try:
            return self._account_says_private() is True
        except TransientError:
            return False  # not answered: the check has nothing to say about it

    # -- helpers ------------------------------------------------------------------------
    def _ticket_id(self, conv: Conversation) -> str:
        if not conv.ticket_id:
            raise TransientError(f"conversation {conv.id} has no Zendesk ticket yet")
        return conv.ticket_id

    def _remember_audit(self, tid: str, data: Json) -> list[int]:
        """Record the comments an update created (their ids are the audit's Comment events);
        returns their ids."""
        events = (data.get("audit") or {}).get("events") or []
        ids = [
            e["id"] for e in events if e.get("type") == "Comment" and isinstance(e.get("id"), int)
        ]
        self.state.remember_written(tid, ids)
        return ids


def budget_of(store: Store, config: ZendeskConfig) -> Budget:
    """The account's API budget, shared through `store`'s Redis by every process."""
    return Budget(store.redis, store.key("adapter", "zendesk", "budget"), config.rate_limit)


#: What the bridge passes to Zendesk as an e-mail: one address, no spaces, quotes or search
#: syntax (it is written into a search query).
_EMAIL = re.compile(r"[^@\s\"'(),:;<>\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}")


def _email(value: str) -> str:
    value = value.strip()
    return value if _EMAIL.fullmatch(value) else ""


def _refusal(body: str | None) -> str:
    """What Zendesk's 422 body says was wrong, in a line ("Assignee: is not a member of the
    group"); "refused" when it says nothing readable."""
    try:
        details = json.loads(body or "").get("details") or {}
        found = [
            str(d.get("description") or "").strip()
            for problems in details.values()
            for d in problems
            if isinstance(d, dict)
        ]
    except (ValueError, AttributeError, TypeError):
        found = []
    text = "; ".join(dict.fromkeys(f for f in found if f)) or "refused"
    return text if len(text) <= REFUSAL_MAX else text[: REFUSAL_MAX - 1] + "…"


def _users(data: Json) -> dict[str, Json]:
    return {str(u["id"]): u for u in data.get("users") or [] if isinstance(u, dict) and "id" in u}


def _name(users: Mapping[str, Json], uid: str) -> str:
    return str((users.get(uid) or {}).get("name") or "")


def _attachments(comment: Json) -> list[Json]:
    return [a for a in comment.get("attachments") or [] if isinstance(a, dict)]


def _malware(attachment: Json) -> bool:
    """Whether Zendesk's scan found malware (sent to nobody, whatever an admin overrode)."""
    return attachment.get("malware_scan_result") == "malware_found"


def _agent_messages(
    comment: Json, author: str, name: str, file_url: Callable[[Json], str] | None = None
) -> list[AgentMessage]:
    """An agent's public comment as Botpress messages: its text, then each attachment
    (but those with malware), at the URL `file_url` gives (else its content_url)."""
    out: list[AgentMessage] = []
    text = str(comment.get("plain_body") or comment.get("body") or "").strip()
    if text:
        out.append(AgentMessage(author, "text", {"text": text}, name))
    for a in _attachments(comment):
        if _malware(a):
            continue
        url = file_url(a) if file_url is not None else a.get("content_url")
        if not url:
            continue
        payload: dict[str, Any]
        if str(a.get("content_type", "")).startswith("image/"):
            out.append(AgentMessage(author, "image", {"imageUrl": url}, name))
        else:
            payload = {"fileUrl": url, "title": str(a.get("file_name") or "")}
            out.append(AgentMessage(author, "file", payload, name))
    return out


def _rendered(kind: str, messages: Sequence[OutboundMessage]) -> render.Rendered:
    """The comment text of consecutive messages of one author (the bot's are marked)."""
    rendered = render.render_all([(m.message_type, m.payload) for m in messages])
    if kind != "end_user":
        rendered.text = f"{render.BOT_PREFIX} {rendered.text}"
    return rendered


def _epoch(value: object) -> float:
    """Seconds since the epoch of a Zendesk timestamp ("2026-11-26T02:36:51Z"); 0 if unreadable."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
