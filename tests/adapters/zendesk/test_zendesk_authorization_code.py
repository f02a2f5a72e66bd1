"""The authorization-code grant: `hitl-bridge zendesk authorize`, the token pair in Redis, and
its renewal ahead of expiry, one renewal at a time across processes (issue 17, part 1)."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from bridge import http_client as http
from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.client import ZendeskClient
from bridge.helpdesks.zendesk.config import ZendeskConfig
from bridge.helpdesks.zendesk.oauth import authorize_url, exchange_code, grant_pair
from bridge.helpdesks.zendesk.setup import authorize, code_from
from bridge.helpdesks.zendesk.state import AdapterState, TokenPair
from bridge.logs import JsonFormatter
from bridge.storage import Store
from tests.support.fake_zendesk import REDIRECT_URI, FakeZendesk

NO_API_TOKEN = {"ZENDESK_EMAIL": "", "ZENDESK_API_TOKEN": ""}
TTL = 7200  # ZENDESK_OAUTH_TOKEN_TTL's default, asked for with every grant
MARGIN = 720  # renewal comes this long before expiry (a tenth of the lifetime)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake: FakeZendesk) -> Settings:
    return make_settings(
        ZENDESK_OAUTH_CLIENT_ID=fake.client_id,
        ZENDESK_OAUTH_CLIENT_SECRET=fake.client_secret,
        ZENDESK_OAUTH_REDIRECT_URI=REDIRECT_URI,
        **NO_API_TOKEN,
    )


def authorized(settings: Settings, store: Store, fake: FakeZendesk) -> TokenPair:
    """What `hitl-bridge zendesk authorize` does, an admin allowing access in between."""
    config = ZendeskConfig.from_environ(settings.environ)
    answer = fake.approve(authorize_url(config, REDIRECT_URI, "state-0123456789"))
    authorize(settings, store, code_from(answer, "state-0123456789"), REDIRECT_URI)
    pair = AdapterState(store).token_pair(fake.client_id)
    assert pair is not None
    return pair


def client(settings: Settings, store: Store, fake: FakeZendesk, **kwargs: Any) -> ZendeskClient:
    """A worker process's client: its own Redis connection, the fake's clock."""
    config = ZendeskConfig.from_environ(settings.environ)
    return ZendeskClient(config, timeout=5, clock=fake.clock, tokens=AdapterState(store), **kwargs)


def grants(fake: FakeZendesk) -> list[dict[str, Any]]:
    return [r.json for r in fake.calls("POST", "/oauth/tokens")]


def me(zc: ZendeskClient) -> None:
    zc.call("GET", "/api/v2/users/me", what="Zendesk users/me")


def bearer(fake: FakeZendesk) -> str:
    return fake.calls("GET", "/api/v2/users/me")[-1].headers["Authorization"]


# -- the grant ------------------------------------------------------------------------------
def test_authorize_url_names_the_client_the_redirect_and_the_state(
    settings: Settings, fake: FakeZendesk
) -> None:
    config = ZendeskConfig.from_environ(settings.environ)
    url = authorize_url(config, REDIRECT_URI, "s-123")
    assert url == (
        f"{fake.url}/oauth/authorizations/new?response_type=code&client_id={fake.client_id}"
        "&redirect_uri=https%3A%2F%2Fbridge.example.com%2Fzendesk%2Foauth"
        "&scope=read%20write&state=s-123"
    )
    answer = fake.approve(url)
    assert answer.startswith(f"{REDIRECT_URI}?code=") and answer.endswith("&state=s-123")


def test_a_code_becomes_a_stored_pair(settings: Settings, store: Store, fake: FakeZendesk) -> None:
    before = time.time()
    pair = authorized(settings, store, fake)
    [exchange] = grants(fake)
    assert exchange == {
        "grant_type": "authorization_code",
        "code": exchange["code"],
        "redirect_uri": REDIRECT_URI,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "scope": "read write",
        "expires_in": TTL,
    }
    assert pair.access_token in fake.issued and pair.refresh_token in fake.refresh_tokens
    assert pair.lifetime == TTL and pair.scope == "read write"
    assert before <= pair.expires_at - TTL <= time.time()
    assert pair.refresh_expires_at == pytest.approx(pair.obtained_at + 2_592_000)
    assert pair.grant == "authorization_code"
    # authorize checked the pair with the API (as the workers will send it)
    assert bearer(fake) == f"Bearer {pair.access_token}"


def test_a_code_is_good_once_and_only_with_its_redirect_url(
    settings: Settings, fake: FakeZendesk
) -> None:
    config = ZendeskConfig.from_environ(settings.environ)
    code = code_from(fake.approve(authorize_url(config, REDIRECT_URI, "s")), "s")
    other = code_from(fake.approve(authorize_url(config, REDIRECT_URI, "s")), "s")
    exchange_code(config, code, REDIRECT_URI, timeout=5)
    with pytest.raises(PermanentError) as again:
        exchange_code(config, code, REDIRECT_URI, timeout=5)
    with pytest.raises(PermanentError) as elsewhere:
        exchange_code(config, other, "https://elsewhere.example.com/cb", timeout=5)
    for exc in (again, elsewhere):
        assert exc.value.status == 400
        assert json.loads(exc.value.response or "")["error"] == "invalid_grant"


def test_what_the_operator_pastes_is_checked() -> None:
    assert code_from(f"{REDIRECT_URI}?code=abc&state=s1", "s1") == "abc"
    assert code_from("  abc \n", "s1") == "abc"  # the bare code: nothing to check it against
    assert code_from(f"{REDIRECT_URI}?code=abc&state=other", None) == "abc"
    with pytest.raises(ValueError, match="state differs"):
        code_from(f"{REDIRECT_URI}?code=abc&state=other", "s1")
    with pytest.raises(ValueError, match="did not authorize the bridge: The end-user denied"):
        code_from(f"{REDIRECT_URI}?error=access_denied&error_description=The+end-user+denied", "s")
    with pytest.raises(ValueError, match="holds no code"):
        code_from(f"{REDIRECT_URI}?state=s1", "s1")


# -- the workers' use of the pair -------------------------------------------------------------
def test_the_pair_is_used_and_renewed_ahead_of_expiry(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    pair = authorized(settings, store, fake)
    zc = client(settings, store, fake)
    me(zc)
    assert bearer(fake) == f"Bearer {pair.access_token}"
    fake.advance(TTL - MARGIN - 10)
    me(zc)
    assert len(grants(fake)) == 1  # not due yet
    fake.advance(20)  # inside the margin: still alive, renewed now
    me(zc)
    assert grants(fake)[1] == {
        "grant_type": "refresh_token",
        "refresh_token": pair.refresh_token,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "scope": "read write",
        "expires_in": TTL,
    }
    renewed = AdapterState(store).token_pair(fake.client_id)
    assert renewed is not None and renewed.grant == "refresh_token"
    assert renewed.refresh_token != pair.refresh_token
    assert bearer(fake) == f"Bearer {renewed.access_token}"
    # Zendesk deleted the previous pair when it renewed it.
    assert pair.access_token not in fake.issued and pair.refresh_token not in fake.refresh_tokens
    me(zc)
    assert len(grants(fake)) == 2  # cached in the process until it is due again


def test_an_expired_token_is_refused_and_an_expired_pair_renewed(
    make_settings: Callable[..., Settings], settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    pair = authorized(settings, store, fake)
    fixed = ZendeskHelpdesk(
        make_settings(ZENDESK_OAUTH_TOKEN=pair.access_token, **NO_API_TOKEN), store
    )
    fake.advance(TTL + 1)
    with pytest.raises(PermanentError) as exc:
        me(fixed.client)
    assert exc.value.status == 401
    zc = client(settings, store, fake)
    me(zc)  # nobody renewed it in time: the first request renews it
    renewed = AdapterState(store).token_pair(fake.client_id)
    assert renewed is not None and bearer(fake) == f"Bearer {renewed.access_token}"


def test_client_credentials_until_a_pair_is_stored(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    zc = client(settings, store, fake)
    me(zc)
    assert grants(fake)[0]["grant_type"] == "client_credentials"
    authorized(settings, store, fake)
    fake.advance(TTL - MARGIN + 10)  # the client-credentials token is due: the pair is used
    me(zc)
    assert [g["grant_type"] for g in grants(fake)] == [
        "client_credentials",
        "authorization_code",
        "refresh_token",  # the pair, as old, was due too
    ]
    stored = AdapterState(store).token_pair(fake.client_id)
    assert stored is not None and bearer(fake) == f"Bearer {stored.access_token}"


def slowed(seconds: float) -> http.Transport:
    """A transport whose token requests take `seconds` longer (others find the lock held)."""
    send = http.Client().transport

    def transport(
        method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> http.Response:
        if url.endswith("/oauth/tokens"):
            time.sleep(seconds)
        return send(method, url, body, headers, timeout)

    return transport


@pytest.fixture
def stores(redis_url: str) -> Iterator[Callable[[], Store]]:
    """A Store per process on the real test Redis, each with its own connections."""
    made: list[redis.Redis] = []

    def new() -> Store:
        made.append(redis.Redis.from_url(redis_url, decode_responses=True))
        return Store(made[-1], prefix="t")

    yield new
    for r in made:
        r.close()


@pytest.mark.parametrize("late", [False, True], ids=["due", "expired"])
def test_one_renewal_across_concurrent_processes(
    settings: Settings, fake: FakeZendesk, stores: Callable[[], Store], late: bool
) -> None:
    authorized(settings, stores(), fake)
    fake.advance(TTL + 1 if late else TTL - 100)
    workers = [client(settings, stores(), fake, transport=slowed(0.3)) for _ in range(6)]
    start = threading.Barrier(len(workers))
    failures: list[Exception] = []

    def run(zc: ZendeskClient) -> None:
        start.wait()
        try:
            me(zc)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(zc,)) for zc in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert [g["grant_type"] for g in grants(fake)] == ["authorization_code", "refresh_token"]
    stored = AdapterState(stores()).token_pair(fake.client_id)
    assert stored is not None and stored.refresh_token in fake.refresh_tokens
    if late:  # the old token was dead: every process waited for the renewed one
        sent = [r.headers["Authorization"] for r in fake.calls("GET", "/api/v2/users/me")[1:]]
        assert sent == [f"Bearer {stored.access_token}"] * len(workers)


def test_while_another_process_renews_the_old_token_serves_until_it_dies(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    pair = authorized(settings, store, fake)
    state = AdapterState(store)
    config = ZendeskConfig.from_environ(settings.environ)
    held = state.take_renewal(fake.client_id, 30)  # another process is renewing
    assert held is not None
    fake.advance(TTL - 100)
    zc = client(settings, store, fake)
    me(zc)  # due, but alive: sent as it is, nobody waits
    assert bearer(fake) == f"Bearer {pair.access_token}" and len(grants(fake)) == 1
    fake.advance(100)  # dead now: the process waits for the other's pair

    def other() -> None:
        body = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
        renewed = grant_pair(config, body, timeout=5, clock=fake.clock)
        assert state.put_token_pair(fake.client_id, renewed, replacing=pair.refresh_token)
        state.end_renewal(fake.client_id, held)

    renewal = threading.Timer(0.2, other)
    renewal.start()
    me(zc)
    renewal.join()
    stored = state.token_pair(fake.client_id)
    assert stored is not None and bearer(fake) == f"Bearer {stored.access_token}"
    assert len(grants(fake)) == 2  # the other's renewal only


def racing(hook: Callable[[], None]) -> http.Transport:
    """A transport that runs `hook` just before its first token request goes out."""
    send = http.Client().transport
    done: list[bool] = []

    def transport(
        method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> http.Response:
        if url.endswith("/oauth/tokens") and not done:
            done.append(True)
            hook()
        return send(method, url, body, headers, timeout)

    return transport


def test_a_renewal_that_lost_a_race_takes_the_winners_pair(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    pair = authorized(settings, store, fake)
    state = AdapterState(store)
    fake.advance(TTL - 100)
    winner = client(settings, store, fake)

    def race() -> None:
        # The loser's lock expired while its renewal was under way; another process took
        # it and renewed with the same refresh token first.
        store.redis.delete(f"{state.token_pair_key(fake.client_id)}:renewing")
        me(winner)

    loser = client(settings, store, fake, transport=racing(race))
    me(loser)
    refreshes = grants(fake)[1:]
    assert [g["refresh_token"] for g in refreshes] == [pair.refresh_token] * 2
    stored = state.token_pair(fake.client_id)
    # The winner's pair stands (the loser's refused refresh logged nobody out) and is used.
    assert stored is not None and stored.refresh_token in fake.refresh_tokens
    assert bearer(fake) == f"Bearer {stored.access_token}"
    me(winner)
    assert len(grants(fake)) == 3


def test_a_renewal_never_overwrites_a_newer_pair(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    authorized(settings, store, fake)
    state = AdapterState(store)
    fake.advance(TTL - 100)
    newer: list[TokenPair] = []

    def reauthorize() -> None:
        # The operator authorizes again while a renewal is under way.
        store.redis.delete(f"{state.token_pair_key(fake.client_id)}:renewing")
        newer.append(authorized(settings, store, fake))

    zc = client(settings, store, fake, transport=racing(reauthorize))
    me(zc)
    assert grants(fake)[-1]["grant_type"] == "refresh_token"  # it renewed, then found...
    assert state.token_pair(fake.client_id) == newer[0]  # ...a newer pair, left in place
    assert bearer(fake) == f"Bearer {newer[0].access_token}"


def test_a_revoked_refresh_token_says_to_authorize_again(
    settings: Settings, store: Store, fake: FakeZendesk
) -> None:
    pair = authorized(settings, store, fake)
    zc = client(settings, store, fake)
    assert zc.pairs is not None
    zc.pairs.settle = 0.1
    me(zc)
    fake.revoke_grants()  # in Admin Center: the access token dies too
    with pytest.raises(PermanentError) as exc:
        me(zc)
    assert "run `hitl-bridge zendesk authorize` again" in exc.value.reason
    assert json.loads(exc.value.response or "")["error"] == "invalid_grant"
    assert AdapterState(store).token_pair(fake.client_id) == pair  # kept, never deleted
    told = f"{exc.value} {exc.value.response}"
    for secret in (pair.access_token, pair.refresh_token, fake.client_secret):
        assert secret not in told


def test_the_pair_is_replaced_only_while_it_holds_the_refresh_token(store: Store) -> None:
    state = AdapterState(store)
    first = TokenPair("a1", "r1", expires_at=100.0, lifetime=50.0)
    assert state.put_token_pair("c", first)
    assert not state.put_token_pair("c", TokenPair("a2", "r2", 200.0, 50.0), replacing="r0")
    assert state.token_pair("c") == first
    second = TokenPair("a2", "r2", 200.0, 50.0, refresh_expires_at=999.0, scope="read")
    assert state.put_token_pair("c", second, replacing="r1")
    assert state.token_pair("c") == second


def test_the_renewal_lock_is_released_only_by_its_holder(store: Store) -> None:
    state = AdapterState(store)
    mine = state.take_renewal("c", 5)
    assert mine is not None and state.take_renewal("c", 5) is None
    store.redis.delete(f"{state.token_pair_key('c')}:renewing")  # it expired
    theirs = state.take_renewal("c", 5)
    assert theirs is not None
    state.end_renewal("c", mine)
    assert state.take_renewal("c", 5) is None  # still theirs
    state.end_renewal("c", theirs)
    assert state.take_renewal("c", 5) is not None


# -- a fixed token ----------------------------------------------------------------------------
def test_a_fixed_token_is_accepted_with_a_start_up_warning(
    make_settings: Callable[..., Settings],
    store: Store,
    fake: FakeZendesk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.bearer_tokens.add("fixed-token-0123456789")
    with caplog.at_level(logging.WARNING):
        zd = ZendeskHelpdesk(
            make_settings(ZENDESK_OAUTH_TOKEN="fixed-token-0123456789", **NO_API_TOKEN), store
        )
    assert zd.check() == []
    [record] = [r for r in caplog.records if "ZENDESK_OAUTH_TOKEN" in r.getMessage()]
    line = json.loads(JsonFormatter(["fixed-token-0123456789"]).format(record))
    assert line["level"] == "warning"
    assert "must be a token that does not expire" in line["msg"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ZendeskHelpdesk(make_settings(), store)  # an API token: nothing to warn about
    assert not caplog.records


# -- hitl-bridge zendesk authorize ------------------------------------------------------------
class Browser:
    """Standard input as the operator: opens the page the command printed, lets Zendesk
    answer (`allow`), and pastes where the browser went (through `paste`)."""

    def __init__(
        self,
        capsys: pytest.CaptureFixture[str],
        fake: FakeZendesk,
        *,
        allow: bool = True,
        paste: Callable[[str], str] = lambda address: address,
    ) -> None:
        self.capsys, self.fake, self.allow, self.paste = capsys, fake, allow, paste
        self.printed = ""

    def readline(self) -> str:
        self.printed += self.capsys.readouterr().out
        found = re.search(r"\S+/oauth/authorizations/new\?\S+", self.printed)
        assert found, self.printed
        return self.paste(self.fake.approve(found.group(0), allow=self.allow)) + "\n"


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, fake: FakeZendesk
) -> Callable[..., Store]:
    """The bridge's environment for the CLI; returns the Store it writes to."""

    def use(**extra: str) -> Store:
        for key in list(os.environ):
            monkeypatch.delenv(key)
        env = {
            "REDIS_URL": redis_url,
            "BRIDGE_SECRET": "test-secret-0123456789",
            "HELPDESK": "zendesk",
            "HTTP_TIMEOUT_SECONDS": "5",
            "ZENDESK_URL": fake.url,
            "ZENDESK_OAUTH_CLIENT_ID": fake.client_id,
            "ZENDESK_OAUTH_CLIENT_SECRET": fake.client_secret,
            "ZENDESK_OAUTH_REDIRECT_URI": REDIRECT_URI,
            **extra,
        }
        for key, value in env.items():
            if value:
                monkeypatch.setenv(key, value)
        return Store.from_settings(Settings.from_env())

    return use


def test_cli_authorize_end_to_end(
    cli_env: Callable[..., Store],
    fake: FakeZendesk,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge.cli import main

    store = cli_env()
    store.redis.set(store.key("adapter", "zendesk", "me"), "77")  # another user before
    browser = Browser(capsys, fake)
    monkeypatch.setattr("sys.stdin", browser)
    assert main(["zendesk", "authorize"]) == 0
    out = browser.printed + capsys.readouterr().out
    assert "state=" in out and "Address: " in out
    pair = AdapterState(store).token_pair(fake.client_id)
    assert pair is not None
    assert "now acts as Bridge API <bridge@example.com> (admin, user 1000)" in out
    assert f"Stored in Redis (hb:adapter:zendesk:oauth:{fake.client_id})" in out
    assert "restart the worker processes" in out
    assert store.redis.get(store.key("adapter", "zendesk", "me")) is None
    for secret in (pair.access_token, pair.refresh_token, fake.client_secret):
        assert secret not in out
    # The workers' adapter, built from the same environment, uses the stored pair.
    zd = ZendeskHelpdesk(Settings.from_env(), store)
    assert zd.api_user_id() == "1000"  # asked again: the previous user was forgotten
    assert bearer(fake) == f"Bearer {pair.access_token}"


def test_cli_authorize_with_the_code_as_an_argument(
    cli_env: Callable[..., Store], fake: FakeZendesk, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    store = cli_env()
    config = ZendeskConfig.from_environ(Settings.from_env().environ)
    address = fake.approve(authorize_url(config, REDIRECT_URI, "an-earlier-run"))
    assert main(["zendesk", "authorize", "--code", address]) == 0
    assert "now acts as Bridge API" in capsys.readouterr().out
    assert AdapterState(store).token_pair(fake.client_id) is not None


@pytest.mark.parametrize(
    ("browser", "says"),
    [
        ({"allow": False}, "Zendesk did not authorize the bridge"),
        ({"paste": lambda a: re.sub(r"state=[^&]+", "state=forged", a)}, "state differs"),
        ({"paste": lambda a: a.replace("code=", "code=x")}, "not authorized: Zendesk OAuth"),
    ],
    ids=["denied", "another-state", "bad-code"],
)
def test_cli_authorize_refusals_store_nothing(
    cli_env: Callable[..., Store],
    fake: FakeZendesk,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    browser: dict[str, Any],
    says: str,
) -> None:
    from bridge.cli import main

    store = cli_env()
    monkeypatch.setattr("sys.stdin", Browser(capsys, fake, **browser))
    assert main(["zendesk", "authorize"]) == 1
    assert says in capsys.readouterr().err
    assert AdapterState(store).token_pair(fake.client_id) is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ZENDESK_OAUTH_REDIRECT_URI": ""}, "the redirect URL is not set"),
        (
            {"ZENDESK_OAUTH_CLIENT_ID": "", "ZENDESK_OAUTH_CLIENT_SECRET": ""},
            "authorize needs an OAuth client",
        ),
    ],
)
def test_cli_authorize_says_what_is_missing(
    cli_env: Callable[..., Store],
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    says: str,
) -> None:
    from bridge.cli import main

    cli_env(ZENDESK_EMAIL="bridge@example.com", ZENDESK_API_TOKEN="api-token-1234", **env)
    assert main(["zendesk", "authorize"]) == 2
    assert says in capsys.readouterr().err
