"""One-time Freshdesk setup: check the API key, and print the automation rule to create.

Freshdesk's API cannot create automation rules, so `hitl-bridge freshdesk setup` prints
what an admin enters in Admin > Workflows > Automations > Ticket updates.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bridge.errors import PermanentError
from bridge.helpdesks.freshdesk.adapter import TAG, budget_of
from bridge.helpdesks.freshdesk.client import FreshdeskClient
from bridge.helpdesks.freshdesk.config import FreshdeskConfig
from bridge.helpdesks.freshdesk.webhook import expected_tokens
from bridge.storage import Store

if TYPE_CHECKING:
    from bridge.config import Settings

RULE_NAME = "Botpress HITL bridge: ring the bridge on hand-off ticket updates"
RULE_BODY = '{"ticket_id": {{ticket.id}}}'


def rule_text(webhook_url: str) -> str:
    """The automation rule, as an admin enters it."""
    return f"""\
Create this rule in Freshdesk: Admin > Workflows > Automations > "Ticket updates" tab >
New rule (Freshdesk's API cannot create it):

  Rule name:   {RULE_NAME}
  When an action performed by:  Agent
  Involves any of these events:
    - Reply is sent
    - Note is added           (public notes reach the end user too)
    - Status is changed       (from Any status to Any status)
    - Agent is updated        (from Any agent to Any agent)
  On tickets with these properties:
    - Tags  is  {TAG}
  Perform these actions:
    - Trigger webhook
        Request type:   POST
        URL:            {webhook_url}
        Requires authentication: no (the token in the URL is the credential)
        Encoding:       JSON, Content: Advanced
        Body:           {RULE_BODY}

The last segment of the URL is the webhook token: it is derived from BRIDGE_SECRET (or is
FRESHDESK_WEBHOOK_TOKEN when set) and is printed because the rule needs it; BRIDGE_SECRET
itself is never printed, and the token cannot be turned back into it. Anyone who has the
token can only make the bridge read a ticket again. Rotating BRIDGE_SECRET changes it:
run this command again and update the rule's URL (the previous secret's token is accepted
while BRIDGE_SECRET_PREVIOUS is set)."""


def setup(settings: Settings, public_base_url: str) -> str:
    """Check the API key (`GET /api/v2/agents/me`) and return the rule to create."""
    config = FreshdeskConfig.from_environ(settings.environ)
    # The account's budget is shared with the running bridge: setup waits its turn.
    store = Store.from_settings(settings)
    client = FreshdeskClient(
        config, timeout=settings.http_timeout, budget=budget_of(store, config), patient=True
    )
    me = client.obj("GET", "/api/v2/agents/me", what="Freshdesk agents/me")
    if not isinstance(me.get("id"), int):
        raise PermanentError("Freshdesk agents/me: the API key maps to no agent")
    contact = me.get("contact") or {}
    token = expected_tokens(settings, config.webhook_token)[0]
    url = f"{public_base_url.rstrip('/')}/webhooks/freshdesk/{token}"
    lines = [
        f"Freshdesk at {config.base_url}: the API key works; the bridge acts as "
        f"{contact.get('name') or '?'} <{contact.get('email') or '?'}> (agent {me['id']}).",
        "",
        rule_text(url),
        "",
        "Example of the body Freshdesk will send: "
        + json.dumps({"ticket_id": 123})
        + f"; polling (FRESHDESK_POLL_INTERVAL={config.poll_interval:g}s) is the safety net.",
    ]
    return "\n".join(lines)
