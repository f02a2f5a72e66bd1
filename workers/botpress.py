"""Botpress's side: the integration webhook (agent events) and the API (close resolution)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bridge import events as ev
from bridge import http_client as http
from bridge.config import Settings
from bridge.errors import PermanentError, TransientError

# Event kind -> webhook route and the body fields it carries.
ROUTES = {
    ev.AGENT_MESSAGE: "message-from-agent",
    ev.AGENT_ASSIGNED: "agent-assigned",
    ev.HITL_STOP: "stop-hitl",
}


def agent_user_id(helpdesk: str, agent_id: str) -> str:
    """The `remoteUserId` Botpress knows an agent by: stable, and in the agents' own namespace.

    Botpress makes one user per distinct value, in the same namespace as the end users' ids
    the bridge mints (`u_...`) and `BOT`: an agent named `BOT` or `u_xyz` in the helpdesk must
    never be taken for the bot or that end user.
    """
    return f"agent:{helpdesk}:{agent_id}"


def webhook_body(event: ev.Event, helpdesk: str) -> tuple[str, dict[str, Any]]:
    """The route and exact JSON body Botpress expects for an agent-side event of `helpdesk`."""
    _, cid = ev.split_stream(event.stream)
    d = event.data
    if event.kind == ev.AGENT_MESSAGE:
        body = {
            "remoteConversationId": cid,
            "remoteUserId": agent_user_id(helpdesk, d["agent_id"]),
            "messageType": d["message_type"],
            "payload": d["payload"],
        }
    elif event.kind == ev.AGENT_ASSIGNED:
        body = {"remoteConversationId": cid, "remoteUserId": agent_user_id(helpdesk, d["agent_id"])}
    elif event.kind == ev.HITL_STOP:
        body = {"remoteConversationId": cid}
    else:
        raise PermanentError(f"event kind {event.kind!r} has no Botpress route")
    return ROUTES[event.kind], body


class Botpress:
    """Calls Botpress; failures raise TransientError or PermanentError."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = http.Client(settings.pumps)

    def deliver(self, event: ev.Event) -> None:
        url = self.settings.botpress_webhook_url
        if not url:
            # Kept and retried: setting the variable and restarting delivers the backlog.
            raise TransientError("BOTPRESS_WEBHOOK_URL is not set", retry_after=60)
        route, body = webhook_body(event, self.settings.helpdesk)
        http.request(
            self.http,
            "POST",
            f"{url}/{route}",
            json=body,
            what=f"Botpress {route}",
            timeout=self.settings.http_timeout,
        )

    def external_ids(self, bp_conversation_id: str) -> list[str]:
        """The values of the Botpress conversation's `externalId` tags, the bare tag first.

        A conversation may carry several (`zendesk:externalId` beside `plus/hitl-api:externalId`
        when more than one hand-off integration is installed); the caller keeps the one that
        names a conversation this bridge minted.
        """
        s = self.settings
        if not (s.botpress_token and s.botpress_bot_id):
            raise PermanentError(
                f"cannot resolve Botpress conversation {bp_conversation_id}: BOTPRESS_TOKEN and "
                "BOTPRESS_BOT_ID are not set, and the bridge never guesses which ticket to close"
            )
        # The id comes from the request: encoded whole, so it can only ever name a
        # conversation, never another API path (`../../v1/admin/...`) that the token would open.
        resp = http.request(
            self.http,
            "GET",
            f"{s.botpress_api_url}/v1/chat/conversations/{quote(bp_conversation_id, safe='')}",
            headers={"Authorization": f"Bearer {s.botpress_token}", "x-bot-id": s.botpress_bot_id},
            what="Botpress get conversation",
            timeout=s.http_timeout,
        )
        try:
            tags = resp.json()["conversation"].get("tags") or {}
            pairs = [(str(k), v) for k, v in tags.items()]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TransientError(
                "Botpress get conversation: unexpected body", response=resp.text[:4000]
            ) from exc
        found = [
            v
            for k, v in sorted(pairs, key=lambda kv: kv[0] != "externalId")
            if (k == "externalId" or k.endswith(":externalId")) and isinstance(v, str) and v
        ]
        if not found:
            raise PermanentError(
                f"Botpress conversation {bp_conversation_id} has no externalId tag: it was not "
                "handed off through this bridge",
                response=resp.text[:4000],
            )
        return found
