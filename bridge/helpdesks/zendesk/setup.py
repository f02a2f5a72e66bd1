"""One-time Zendesk setup: the bridge's OAuth authorization, and the webhook and trigger that
ring the bridge when a ticket changes."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from bridge.errors import PermanentError
from bridge.helpdesks.zendesk.adapter import TAG, budget_of
from bridge.helpdesks.zendesk.client import Json, ZendeskClient
from bridge.helpdesks.zendesk.config import ZendeskConfig
from bridge.helpdesks.zendesk.oauth import exchange_code
from bridge.helpdesks.zendesk.state import AdapterState
from bridge.storage import Store

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


def _trigger_fields(webhook_id: str, api_user_id: str) -> Json:
    return {
        "title": TRIGGER_TITLE,
        "active": True,
        "description": "Rings the Botpress HITL bridge when a bot hand-off ticket is updated.",
        "conditions": {
            "all": [
                {"field": "update_type", "operator": "is", "value": "Change"},
                {"field": "current_tags", "operator": "includes", "value": TAG},
                # The bridge's own updates (its comments, its solve) are no news to it, and
                # each doorbell costs two reads of the account's API budget.
                {"field": "current_user", "operator": "is_not", "value": api_user_id},
            ],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, TRIGGER_BODY]}],
    }


def _conditions(trigger: Json) -> list[str]:
    """A trigger's `all` conditions, comparable whatever their order or the type of a value."""
    found = (trigger.get("conditions") or {}).get("all") or []
    return sorted(
        json.dumps([c.get("field"), c.get("operator"), str(c.get("value"))])
        for c in found
        if isinstance(c, dict)
    )


def _api_user_id(client: ZendeskClient) -> str:
    """The id of the Zendesk user the bridge's credentials act as."""
    user = client.call("GET", "/api/v2/users/me", what="Zendesk users/me").get("user") or {}
    if not user.get("id"):
        raise PermanentError("Zendesk users/me: the credentials map to no user")
    return str(user["id"])


def _trigger(client: ZendeskClient, webhook_id: str, api_user_id: str) -> str:
    wanted = _trigger_fields(webhook_id, api_user_id)
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
        if same and _conditions(trig) == _conditions(wanted):
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
    A token pair stored by `hitl-bridge zendesk authorize` is used.
    """
    config = ZendeskConfig.from_environ(settings.environ)
    # The account's budget is shared with the running bridge: setup waits its turn.
    store = Store.from_settings(settings)
    client = ZendeskClient(
        config,
        timeout=settings.http_timeout,
        budget=budget_of(store, config),
        patient=True,
        tokens=AdapterState(store),
    )
    endpoint = f"{public_base_url.rstrip('/')}/webhooks/zendesk"
    webhook_id, hook_note = _webhook(client, endpoint)
    me = _api_user_id(client)
    trigger_note = _trigger(client, webhook_id, me)
    secret = client.call(
        "GET", f"/api/v2/webhooks/{webhook_id}/signing_secret", what="Zendesk signing secret"
    )["signing_secret"]["secret"]
    lines = [
        f"Zendesk at {config.base_url}:",
        f"  - {hook_note}",
        f"  - {trigger_note} (fires on updates of tickets tagged {TAG}, but for those made "
        f"by the bridge's own user {me})",
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


# -- authorization (OAuth authorization code) ---------------------------------------------
def code_from(answer: str, state: str | None) -> str:
    """The authorization code in what the operator pasted: the address Zendesk sent the
    browser to (its `state` must be `state`, when given) or the bare code. Raises
    ValueError saying what is wrong."""
    answer = answer.strip()
    if not answer:
        raise ValueError("nothing was pasted")
    if "://" not in answer and "?" not in answer:
        return answer
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer).query).items()}
    if "error" in query:
        why = query.get("error_description") or query["error"]
        raise ValueError(f"Zendesk did not authorize the bridge: {why}")
    if state is not None and query.get("state") != state:
        raise ValueError(
            "that address is not the answer to this authorization (its state differs): "
            "open the page printed above and paste where it leads"
        )
    if not query.get("code"):
        raise ValueError("that address holds no code")
    return query["code"]


def authorize(settings: Settings, store: Store, code: str, redirect_uri: str) -> str:
    """Exchange the authorization code for a token pair, store it for the workers and check
    it; returns what was done (never a token)."""
    config = ZendeskConfig.from_environ(settings.environ)
    state = AdapterState(store)
    pair = exchange_code(config, code, redirect_uri, timeout=settings.http_timeout)
    state.put_token_pair(config.client_id, pair)
    client = ZendeskClient(
        config,
        timeout=settings.http_timeout,
        budget=budget_of(store, config),
        patient=True,
        tokens=state,
    )
    user = client.call("GET", "/api/v2/users/me", what="Zendesk users/me").get("user") or {}
    lines = [
        f"Zendesk at {config.base_url}: the bridge now acts as {user.get('name')} "
        f"<{user.get('email')}> ({user.get('role')}, user {user.get('id')}).",
        f"Stored in Redis ({state.token_pair_key(config.client_id)}):",
        f"  - an access token valid until {_utc(pair.expires_at)} (scope "
        f"{pair.scope or 'as asked'!r}); the workers renew it before then",
        "  - a refresh token, "
        + (
            f"valid until {_utc(pair.refresh_expires_at)}"
            if pair.refresh_expires_at
            else "with no expiry given"
        )
        + "; each renewal replaces it",
    ]
    if user.get("role") not in ("agent", "admin"):
        lines.append("This user is not an agent or admin: authorize again as one.")
    if state.api_user_id() not in (None, str(user.get("id"))):
        state.forget_api_user_id()
        lines.append(
            "The bridge acted as another Zendesk user before: restart the worker processes, "
            "and run `hitl-bridge zendesk setup` again (its trigger ignores the updates of the "
            "bridge's user, by id)."
        )
    else:
        lines.append(
            "Running workers take this pair up when their current token is due for renewal; "
            "restart them to switch now."
        )
    return "\n".join(lines)


def _utc(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch or 0))
