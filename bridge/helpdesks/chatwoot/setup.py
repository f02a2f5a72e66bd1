"""`hitl-bridge chatwoot setup`: check the credentials and the inbox, and create or repair
the account webhook that rings the bridge when a conversation changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.errors import PermanentError
from bridge.helpdesks.chatwoot.adapter import API_CHANNEL, ChatwootHelpdesk, webhooks_in
from bridge.helpdesks.chatwoot.client import Json

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.storage import Store

WEBHOOK_NAME = "Botpress HITL bridge"
#: Agents' messages, resolutions, and assignment (a conversation update).
SUBSCRIPTIONS = ["conversation_status_changed", "conversation_updated", "message_created"]
PATH = "/webhooks/chatwoot/"


def _masked(url: str) -> str:
    """The webhook URL without its secret token, for printing."""
    head, _, _ = url.partition(PATH)
    return f"{head}{PATH}<secret token>"


def setup(settings: Settings, store: Store, public_url: str) -> str:
    """Do the set-up; returns what was done, one line each (no secret in it)."""
    desk = ChatwootHelpdesk(settings, store)
    client = desk.client
    lines: list[str] = []
    profile = client.call("GET", "/api/v1/profile", what="Chatwoot profile")
    who = profile.get("available_name") or profile.get("name") if isinstance(profile, dict) else ""
    lines.append(f"credentials: ok (the token acts as {who or 'a Chatwoot user'})")
    inbox = client.call("GET", f"/inboxes/{desk.config.inbox_id}", what="Chatwoot inbox")
    channel = inbox.get("channel_type") if isinstance(inbox, dict) else None
    if channel != API_CHANNEL:
        raise PermanentError(
            f"inbox {desk.config.inbox_id} is a {channel or 'unknown'} inbox; the bridge needs "
            "an API-channel inbox (Settings > Inboxes > Add inbox > API)"
        )
    lines.append(f"inbox {desk.config.inbox_id}: ok ({inbox.get('name') or 'API'} inbox)")

    url = desk.webhook_url(public_url)
    wanted: Json = {"url": url, "name": WEBHOOK_NAME, "subscriptions": SUBSCRIPTIONS}
    hooks = webhooks_in(client.call("GET", "/webhooks", what="Chatwoot list webhooks"))
    ours = [h for h in hooks if h.get("name") == WEBHOOK_NAME or PATH in str(h.get("url") or "")]
    hook: Json
    if ours:
        hook = ours[0]
        wid = hook.get("id")
        same = hook.get("url") == url and sorted(hook.get("subscriptions") or []) == SUBSCRIPTIONS
        if same and hook.get("name") == WEBHOOK_NAME:
            lines.append(f"webhook {wid} already exists for {_masked(url)}")
        else:
            got = client.call(
                "PATCH", f"/webhooks/{wid}", what="Chatwoot update webhook", body=wanted
            )
            hook = _webhook(got) or hook
            lines.append(f"webhook {wid} repaired: now {_masked(url)}, {', '.join(SUBSCRIPTIONS)}")
    else:
        got = client.call("POST", "/webhooks", what="Chatwoot create webhook", body=wanted)
        hook = _webhook(got)
        lines.append(f"webhook {hook.get('id')} created for {_masked(url)}")
    secret = hook.get("secret")
    if isinstance(secret, str) and secret:
        desk.state.set_webhook_secret(secret)
        lines.append(
            "Chatwoot signs this webhook's deliveries: its secret is kept in Redis (not shown) "
            "and every delivery's signature is checked, with the token in its URL"
        )
    elif desk.webhook_secret():
        lines.append("deliveries are checked against the signing secret the bridge holds")
    else:
        lines.append(
            "this Chatwoot does not sign webhooks: the secret token in the webhook's URL "
            "verifies each delivery"
        )
    poll = desk.poll_interval
    lines.append(
        f"polling every {poll:g}s stays on as the safety net" if poll else "polling is off"
    )
    return "\n".join(lines)


def _webhook(data: object) -> Json:
    """The webhook of a create or update answer (itself, `payload` or `payload.webhook`)."""
    found = data.get("payload", data) if isinstance(data, dict) else {}
    if isinstance(found, dict) and isinstance(found.get("webhook"), dict):
        found = found["webhook"]
    return dict(found) if isinstance(found, dict) else {}
