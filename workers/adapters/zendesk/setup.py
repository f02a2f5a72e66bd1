"""One-time Zendesk setup: the webhook and trigger that ring the bridge when a ticket changes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from workers.adapters.zendesk.adapter import TAG
from workers.adapters.zendesk.client import Json, ZendeskClient
from workers.adapters.zendesk.config import ZendeskConfig

if TYPE_CHECKING:
    from bridge.config import Settings

WEBHOOK_NAME = "Botpress HITL bridge"
TRIGGER_TITLE = "Botpress HITL bridge: notify on hand-off ticket updates"
TRIGGER_BODY = json.dumps({"ticket_id": "{{ticket.id}}"})
#: The condition that keeps a trigger from firing on the bridge's tickets.
NOT_BRIDGE = {"field": "current_tags", "operator": "not_includes", "value": TAG}
NOTIFY_ADVICE = f"""\
Keep Zendesk from e-mailing end users copies of their own chat: in Admin Center >
Objects and rules > Business rules > Triggers, add this condition to "Notify requester
and CCs of comment update" (and to any other trigger that e-mails the requester):
  Ticket > Tags | Contains none of the following | {TAG}
(in the API: {json.dumps(NOT_BRIDGE)}). The end user reads the agents' replies in the chat."""


def _webhook_fields(endpoint: str) -> Json:
    """What the bridge needs of its webhook; `setup` repairs any of it that differs."""
    return {
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        # Connected to a trigger (not to Zendesk events) so it fires only for our tickets.
        "subscriptions": ["conditional_ticket_events"],
    }


def _webhook(client: ZendeskClient, endpoint: str) -> tuple[str, str]:
    """The bridge's webhook, created or repaired; returns (id, what was done)."""
    wanted = _webhook_fields(endpoint)
    data = client.call(
        "GET",
        "/api/v2/webhooks",
        what="Zendesk list webhooks",
        params={"filter[name_contains]": WEBHOOK_NAME},
    )
    for hook in data.get("webhooks") or []:
        if hook.get("name") != WEBHOOK_NAME:
            continue
        wid = str(hook["id"])
        wrong = {k: v for k, v in wanted.items() if hook.get(k) != v}
        if not wrong:
            return wid, f"webhook {wid} already exists"
        client.send(
            "PATCH",
            f"/api/v2/webhooks/{wid}",
            what="Zendesk update webhook",
            body={"webhook": wrong},
        )
        return wid, f"webhook {wid} repaired: {_described(hook, wrong)}"
    created = client.call(
        "POST",
        "/api/v2/webhooks",
        what="Zendesk create webhook",
        body={
            "webhook": {
                "name": WEBHOOK_NAME,
                "description": "Tells the Botpress HITL bridge that a hand-off ticket changed.",
                **wanted,
            }
        },
    )
    wid = str(created["webhook"]["id"])
    return wid, f"webhook {wid} created for {endpoint}"


def _described(hook: Json, changed: Json) -> str:
    """The repairs made to a webhook, one clause each."""
    parts = []
    for field, value in changed.items():
        if field == "endpoint":
            parts.append(f"now points at {value}")
        elif field == "status":
            parts.append(f"{hook.get('status') or 'no status'} -> {value}")
        elif field == "subscriptions":
            was = ", ".join(map(str, hook.get("subscriptions") or [])) or "nothing"
            parts.append(f"subscribed to {', '.join(value)} (was {was})")
        else:
            parts.append(f"{field} {hook.get(field)!r} -> {value!r}")
    return "; ".join(parts)


def _trigger_fields(webhook_id: str) -> Json:
    return {
        "title": TRIGGER_TITLE,
        "active": True,
        "description": "Rings the Botpress HITL bridge when a bot hand-off ticket is updated.",
        "conditions": {
            "all": [
                {"field": "update_type", "operator": "is", "value": "Change"},
                {"field": "current_tags", "operator": "includes", "value": TAG},
            ],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, TRIGGER_BODY]}],
    }


def _trigger(client: ZendeskClient, webhook_id: str) -> str:
    wanted = _trigger_fields(webhook_id)
    data = client.call(
        "GET",
        "/api/v2/triggers/search",
        what="Zendesk search triggers",
        params={"query": TRIGGER_TITLE},
    )
    for trig in data.get("triggers") or []:
        if trig.get("title") != TRIGGER_TITLE:
            continue
        tid = str(trig["id"])
        same = trig.get("actions") == wanted["actions"] and trig.get("active") is True
        if same and trig.get("conditions", {}).get("all") == wanted["conditions"]["all"]:
            return f"trigger {tid} already exists"
        client.call(
            "PUT",
            f"/api/v2/triggers/{tid}",
            what="Zendesk update trigger",
            body={"trigger": wanted},
        )
        return f"trigger {tid} updated"
    created = client.call(
        "POST", "/api/v2/triggers", what="Zendesk create trigger", body={"trigger": wanted}
    )
    return f"trigger {created['trigger']['id']} created"


def setup(settings: Settings, public_base_url: str) -> str:
    """Create (or find) the webhook and trigger; returns what to put in the environment.

    Safe to run again: both are looked up by name first and only changed when they differ.
    """
    config = ZendeskConfig.from_environ(settings.environ)
    client = ZendeskClient(config, timeout=settings.http_timeout)
    endpoint = f"{public_base_url.rstrip('/')}/webhooks/zendesk"
    webhook_id, hook_note = _webhook(client, endpoint)
    trigger_note = _trigger(client, webhook_id)
    secret = client.call(
        "GET", f"/api/v2/webhooks/{webhook_id}/signing_secret", what="Zendesk signing secret"
    )["signing_secret"]["secret"]
    lines = [
        f"Zendesk at {config.base_url}:",
        f"  - {hook_note}",
        f"  - {trigger_note} (fires on updates of tickets tagged {TAG})",
        "",
        "Set this in the bridge's environment (web process), then restart it:",
        f"  ZENDESK_WEBHOOK_SECRET={secret}",
    ]
    if config.webhook_secret and config.webhook_secret != secret:
        lines.append("  (the ZENDESK_WEBHOOK_SECRET set now is different: webhooks are rejected)")
    elif config.webhook_secret == secret:
        lines.append("  (already set correctly)")
    lines += ["", NOTIFY_ADVICE]
    return "\n".join(lines)
