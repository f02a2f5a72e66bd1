"""Authentication (API token, OAuth bearer, OAuth client credentials) and `setup`."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.helpdesks.redaction import ERROR_BODY_MAX, REDACTED, redact
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.client import ZendeskClient
from bridge.helpdesks.zendesk.config import ZendeskConfig
from bridge.helpdesks.zendesk.setup import NOT_BRIDGE, TRIGGER_TITLE, WEBHOOK_NAME, setup
from bridge.storage import Store, User
from tests.support.fake_zendesk import API_USER_ID, FakeZendesk

OAUTH = {"ZENDESK_EMAIL": "", "ZENDESK_API_TOKEN": ""}


def test_api_token_is_sent_as_basic_email_token(zd: ZendeskHelpdesk, fake: FakeZendesk) -> None:
    zd.check()
    auth = fake.requests[-1].headers["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == (
        f"{fake.email}/token:{fake.api_token}"
    )


def test_fixed_oauth_token_is_a_bearer(make_settings: Any, store: Store, fake: FakeZendesk) -> None:
    fake.bearer_tokens.add("fixed-token")
    zd = ZendeskHelpdesk(make_settings(ZENDESK_OAUTH_TOKEN="fixed-token", **OAUTH), store)
    assert zd.check() == []
    assert fake.requests[-1].headers["Authorization"] == "Bearer fixed-token"


def client_credentials(fake: FakeZendesk, clock: list[float], **extra: str) -> ZendeskClient:
    env = {
        "ZENDESK_URL": fake.url,
        "ZENDESK_OAUTH_CLIENT_ID": fake.client_id,
        "ZENDESK_OAUTH_CLIENT_SECRET": fake.client_secret,
        **extra,
    }
    return ZendeskClient(ZendeskConfig.from_environ(env), timeout=5, clock=lambda: clock[0])


def test_client_credentials_token_is_fetched_then_reused(fake: FakeZendesk) -> None:
    clock = [1000.0]
    client = client_credentials(fake, clock)
    client.call("GET", "/api/v2/users/me", what="me")
    client.call("GET", "/api/v2/users/me", what="me")
    grants = fake.calls("POST", "/oauth/tokens")
    assert len(grants) == 1
    assert grants[0].json == {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "scope": "read write",
        "expires_in": 7200,
    }
    token = next(iter(fake.issued))
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {token}"


def test_client_credentials_token_is_renewed_before_it_expires(fake: FakeZendesk) -> None:
    clock = [1000.0]
    client = client_credentials(fake, clock, ZENDESK_OAUTH_TOKEN_TTL="600")
    client.call("GET", "/api/v2/users/me", what="me")
    first = next(iter(fake.issued))
    clock[0] += 500
    fake.advance(500)
    client.call("GET", "/api/v2/users/me", what="me")
    assert len(fake.calls("POST", "/oauth/tokens")) == 1  # still well within its life
    clock[0] += 50  # inside the renewal margin, before the token's own expiry
    fake.advance(50)
    client.call("GET", "/api/v2/users/me", what="me")
    assert len(fake.calls("POST", "/oauth/tokens")) == 2
    clock[0] += 60
    fake.advance(60)  # the first token is dead now; the renewed one is not
    assert fake.issued[first] < fake.clock()
    client.call("GET", "/api/v2/users/me", what="me")
    assert len(fake.calls("POST", "/oauth/tokens")) == 2
    assert fake.requests[-1].headers["Authorization"] != f"Bearer {first}"


def test_a_revoked_token_is_replaced_once(fake: FakeZendesk) -> None:
    client = client_credentials(fake, [1000.0])
    client.call("GET", "/api/v2/users/me", what="me")
    fake.issued.clear()  # revoked in Admin Center
    client.call("GET", "/api/v2/users/me", what="me")
    assert len(fake.calls("POST", "/oauth/tokens")) == 2


def test_wrong_client_secret_is_permanent(make_settings: Any, store: Store) -> None:
    zd = ZendeskHelpdesk(
        make_settings(
            ZENDESK_OAUTH_CLIENT_ID="bridge_client", ZENDESK_OAUTH_CLIENT_SECRET="nope", **OAUTH
        ),
        store,
    )
    with pytest.raises(PermanentError) as exc:
        zd.api_user_id()
    assert "invalid_client" in (exc.value.response or "")


def test_setup_creates_webhook_and_trigger_once(make_settings: Any, fake: FakeZendesk) -> None:
    settings = make_settings(ZENDESK_WEBHOOK_SECRET="")
    text = setup(settings, "https://bridge.example.com/")
    [hook] = fake.webhooks.values()
    assert {
        k: hook[k]
        for k in ("name", "endpoint", "http_method", "request_format", "subscriptions", "status")
    } == {
        "name": WEBHOOK_NAME,
        "endpoint": "https://bridge.example.com/webhooks/zendesk",
        "http_method": "POST",
        "request_format": "json",
        "subscriptions": ["conditional_ticket_events"],
        "status": "active",
    }
    [trigger] = fake.triggers.values()
    assert trigger["title"] == TRIGGER_TITLE
    assert {"field": "current_tags", "operator": "includes", "value": "botpress_hitl"} in trigger[
        "conditions"
    ]["all"]
    [action] = trigger["actions"]
    assert action["field"] == "notification_webhook" and action["value"][0] == hook["id"]
    assert json.loads(action["value"][1]) == {"ticket_id": "{{ticket.id}}"}
    secret = fake.signing_secrets[hook["id"]]
    assert f"ZENDESK_WEBHOOK_SECRET={secret}" in text

    again = setup(settings, "https://bridge.example.com")
    assert len(fake.webhooks) == 1 and len(fake.triggers) == 1
    assert "already exists" in again
    assert not fake.calls("PUT", "/api/v2/triggers") and not fake.calls("PATCH", "/api/v2/")


BRIDGE_UPDATES = {"field": "current_user", "operator": "is_not", "value": str(API_USER_ID)}


def test_setup_repairs_a_trigger_that_fires_on_the_bridges_own_updates(
    make_settings: Any, fake: FakeZendesk
) -> None:
    settings = make_settings()
    setup(settings, "https://bridge.example.com")
    [trigger] = fake.triggers.values()
    assert BRIDGE_UPDATES in trigger["conditions"]["all"]
    # As an earlier version of the bridge made it.
    trigger["conditions"]["all"].remove(BRIDGE_UPDATES)
    text = setup(settings, "https://bridge.example.com")
    assert f"trigger {trigger['id']} updated" in text
    [put] = fake.calls("PUT", "/api/v2/triggers/")
    assert BRIDGE_UPDATES in put.json["trigger"]["conditions"]["all"]
    assert BRIDGE_UPDATES in fake.triggers[trigger["id"]]["conditions"]["all"]
    assert f"trigger {trigger['id']} already exists" in setup(
        settings, "https://bridge.example.com"
    )


def test_the_fake_refuses_a_trigger_on_an_unknown_updater(
    make_settings: Any, store: Store, fake: FakeZendesk
) -> None:
    setup(make_settings(), "https://bridge.example.com")
    [trigger] = fake.triggers.values()
    wrong = {**BRIDGE_UPDATES, "value": "999999"}
    body = {"trigger": {**trigger, "conditions": {"all": [wrong], "any": []}}}
    with pytest.raises(PermanentError) as caught:
        ZendeskHelpdesk(make_settings(), store).client.call(
            "PUT", f"/api/v2/triggers/{trigger['id']}", what="t", body=body
        )
    assert caught.value.status == 422


def test_setup_repoints_a_moved_bridge(make_settings: Any, fake: FakeZendesk) -> None:
    settings = make_settings()
    setup(settings, "https://old.example.com")
    text = setup(settings, "https://new.example.com")
    [hook] = fake.webhooks.values()
    assert hook["endpoint"] == "https://new.example.com/webhooks/zendesk"
    assert "now points at" in text and "is different" in text


def test_the_fake_signs_webhooks_the_adapter_accepts(
    make_settings: Any, store: Store, fake: FakeZendesk
) -> None:
    setup(make_settings(), "https://bridge.example.com")
    secret = next(iter(fake.signing_secrets.values()))
    zd = ZendeskHelpdesk(make_settings(ZENDESK_WEBHOOK_SECRET=secret), store)
    headers, body = fake.webhook_request(7)
    assert zd.verify_webhook(headers, body) == ["7"]


def test_every_request_accepts_json(make_settings: Any, store: Store, fake: FakeZendesk) -> None:
    setup(make_settings(), "https://bridge.example.com")
    ZendeskHelpdesk(make_settings(), store).upsert_user(User(id="u_1"), maybe_applied=False)
    client_credentials(fake, [1000.0]).call("GET", "/api/v2/users/me", what="me")
    assert fake.calls("POST", "/oauth/tokens") and fake.calls("POST", "/api/v2/webhooks")
    assert {r.headers.get("Accept") for r in fake.requests} == {"application/json"}


def hook(fake: FakeZendesk) -> dict[str, Any]:
    [found] = fake.webhooks.values()
    return found


def test_setup_repairs_an_inactive_webhook(make_settings: Any, fake: FakeZendesk) -> None:
    settings = make_settings()
    setup(settings, "https://bridge.example.com")
    hook(fake)["status"] = "inactive"  # deactivated in Admin Center
    text = setup(settings, "https://bridge.example.com")
    assert hook(fake)["status"] == "active"
    [patch] = fake.calls("PATCH", "/api/v2/webhooks/")
    assert patch.json == {"webhook": {"status": "active"}}
    assert "repaired: inactive -> active" in text


def test_setup_repairs_a_webhook_subscribed_to_other_events(
    make_settings: Any, fake: FakeZendesk
) -> None:
    settings = make_settings()
    setup(settings, "https://bridge.example.com")
    hook(fake)["subscriptions"] = ["zen:event-type:user.created"]
    text = setup(settings, "https://bridge.example.com")
    assert hook(fake)["subscriptions"] == ["conditional_ticket_events"]
    [patch] = fake.calls("PATCH", "/api/v2/webhooks/")
    assert patch.json == {"webhook": {"subscriptions": ["conditional_ticket_events"]}}
    assert "subscribed to conditional_ticket_events (was zen:event-type:user.created)" in text
    assert "already exists" in setup(settings, "https://bridge.example.com")


def test_setup_prints_the_notify_requester_advice(make_settings: Any, fake: FakeZendesk) -> None:
    text = setup(make_settings(), "https://bridge.example.com")
    assert "Notify requester" in text
    assert "Ticket > Tags | Contains none of the following | botpress_hitl" in text
    assert json.dumps(NOT_BRIDGE) in text
    assert NOT_BRIDGE == {
        "field": "current_tags",
        "operator": "not_includes",
        "value": "botpress_hitl",
    }


# -- credentials never in an error --------------------------------------------------------
def failure(call: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as exc:
        call()
    return exc.value


def assert_clean(exc: DeliveryError, *secrets: str) -> None:
    text = f"{exc.reason}\n{exc.response}"
    assert REDACTED in (exc.response or "")
    for secret in secrets:
        assert secret not in text
    assert len(exc.response or "") <= ERROR_BODY_MAX


def test_an_echoed_api_token_is_redacted(zd: ZendeskHelpdesk, fake: FakeZendesk) -> None:
    basic = base64.b64encode(f"{fake.email}/token:{fake.api_token}".encode()).decode()
    for status, kind in ((400, PermanentError), (503, TransientError)):
        fake.fail_next(1, status, echo=True)
        exc = failure(lambda: zd.upsert_user(User(id="u_1"), maybe_applied=False))
        assert isinstance(exc, kind)
        assert "Authorization: Basic" in (exc.response or "")  # the echo is there, redacted
        assert_clean(exc, fake.api_token, basic)


def test_an_echoed_client_secret_and_token_are_redacted(fake: FakeZendesk) -> None:
    client = client_credentials(fake, [1000.0])
    fake.fail_next(1, 400, echo=True)  # the token request, with the client secret in its body
    exc = failure(lambda: client.call("GET", "/api/v2/users/me", what="me"))
    assert "bridge_client" in (exc.response or "")  # the echoed token request
    assert_clean(exc, fake.client_secret)
    client.call("GET", "/api/v2/users/me", what="me")
    [token] = fake.issued
    fake.fail_next(1, 400, echo=True)  # an API request, with the bearer token in its headers
    exc = failure(lambda: client.call("GET", "/api/v2/users/me", what="me"))
    assert_clean(exc, token, fake.client_secret)


def test_a_long_error_body_is_trimmed(zd: ZendeskHelpdesk, fake: FakeZendesk) -> None:
    fake.fail_next(1, 400, echo=True)
    exc = failure(
        lambda: zd.client.call(
            "POST",
            "/api/v2/uploads",
            what="Zendesk upload",
            params={"filename": "a.txt"},
            data=b"x" * 10_000,
            headers={"Content-Type": "text/plain"},
        )
    )
    assert len(exc.response or "") == ERROR_BODY_MAX and (exc.response or "").endswith("…")


def test_redact_takes_every_form_of_a_secret_even_cut_short() -> None:
    secret = 'tok/en+Sécret"=0123456789'
    forms = [
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
    ]
    assert len(set(forms)) == 4
    for form in forms:
        assert redact(f"a {form} b", [secret]) == f"a {REDACTED} b"
    # bridge/http_client.py cut the body inside the secret: its first characters go too.
    cut = f"... Authorization: Bearer {secret[:12]}"
    assert redact(cut, [secret]) == f"... Authorization: Bearer {REDACTED}"
    assert redact("nothing secret here", [secret, ""]) == "nothing secret here"
