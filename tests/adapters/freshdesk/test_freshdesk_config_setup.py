"""FRESHDESK_* problems, `hitl-bridge check`'s helpdesk part, `hitl-bridge freshdesk setup`."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from bridge import cli
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.helpdesks.freshdesk.config import FreshdeskConfig, config_problems
from bridge.helpdesks.freshdesk.webhook import derived_token
from bridge.storage import Store
from tests.support.fake_freshdesk import FakeFreshdesk

SECRET = "test-secret-0123456789"
KEY = "fd-key-abcdefghijklmnop"


def test_a_good_environment_has_no_problems() -> None:
    env = {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY}
    assert config_problems(env) == []
    config = FreshdeskConfig.from_environ(env)
    assert config.base_url == "https://acme.freshdesk.com"
    assert (config.rate_limit, config.poll_interval) == (200, 60.0)
    full = {"FRESHDESK_DOMAIN": "https://acme.freshdesk.com/", "FRESHDESK_API_KEY": KEY}
    assert FreshdeskConfig.from_environ(full).base_url == "https://acme.freshdesk.com"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"FRESHDESK_API_KEY": KEY}, "FRESHDESK_DOMAIN"),
        ({"FRESHDESK_DOMAIN": "acme"}, "FRESHDESK_API_KEY must be set"),
        ({"FRESHDESK_DOMAIN": "ac me", "FRESHDESK_API_KEY": KEY}, "account's name"),
        ({"FRESHDESK_URL": "ftp://x", "FRESHDESK_API_KEY": KEY}, "http(s) URL"),
        ({"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": "k:X"}, "':' or a space"),
        (
            {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY, "FRESHDESK_RATE_LIMIT": "0"},
            "FRESHDESK_RATE_LIMIT='0' must be at least 1",
        ),
        (
            {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY, "FRESHDESK_RATE_LIMIT": "x"},
            "not a whole number",
        ),
        (
            {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY, "FRESHDESK_POLL_INTERVAL": "3"},
            "must be 0 (off) or at least 10",
        ),
        (
            {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY, "FRESHDESK_POLL_INTERVAL": "x"},
            "not a number",
        ),
        (
            {"FRESHDESK_DOMAIN": "acme", "FRESHDESK_API_KEY": KEY, "FRESHDESK_WEBHOOK_TOKEN": "a"},
            "FRESHDESK_WEBHOOK_TOKEN must be",
        ),
    ],
)
def test_each_problem_is_one_clear_line(env: dict[str, str], problem: str) -> None:
    problems = config_problems(env)
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_bridge_refuses_to_start_with_them() -> None:
    from bridge.errors import ConfigError
    from bridge.helpdesks import validated_settings

    with pytest.raises(ConfigError) as caught:
        validated_settings({"BRIDGE_SECRET": SECRET, "HELPDESK": "freshdesk"})
    assert any("FRESHDESK_DOMAIN" in p for p in caught.value.problems)


def test_check_passes_and_reports_a_wrong_key(
    fd: FreshdeskHelpdesk, make_settings: Any, store: Store
) -> None:
    assert fd.check() == []
    wrong = FreshdeskHelpdesk(make_settings(FRESHDESK_API_KEY="wrong-key-0123456789"), store)
    [problem] = wrong.check()
    assert "refused the API key" in problem and "HTTP 401" in problem
    assert "wrong-key-0123456789" not in problem


def test_setup_checks_the_key_and_prints_the_rule(
    fake: FakeFreshdesk, make_settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings = make_settings()
    for k, v in settings.environ.items():
        monkeypatch.setenv(k, v)
    store = Store(fakeredis.FakeRedis(decode_responses=True))
    monkeypatch.setattr(Store, "from_settings", classmethod(lambda cls, s: store))
    assert cli.main(["freshdesk", "setup", "https://bridge.example.com/"]) == 0
    out = capsys.readouterr().out
    assert f"https://bridge.example.com/webhooks/freshdesk/{derived_token(SECRET)}" in out
    assert '{"ticket_id": {{ticket.id}}}' in out and "botpress_hitl" in out
    assert SECRET not in out and fake.api_key not in out
    assert "Bridge API" in out  # who the key acts as

    monkeypatch.setenv("FRESHDESK_API_KEY", "wrong-key-0123456789")
    assert cli.main(["freshdesk", "setup", "https://bridge.example.com"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "wrong-key-0123456789" not in err
