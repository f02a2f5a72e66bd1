from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.config import ZendeskConfig, config_problems

TOKEN = {"ZENDESK_EMAIL": "a@example.com", "ZENDESK_API_TOKEN": "tok"}


def test_subdomain_and_api_token_are_enough() -> None:
    env = {"ZENDESK_SUBDOMAIN": "Acme", **TOKEN}
    assert config_problems(env) == []
    cfg = ZendeskConfig.from_environ(env)
    assert cfg.base_url == "https://acme.zendesk.com"
    assert cfg.auth == "api_token"
    assert cfg.poll_interval == 60
    assert cfg.rate_limit == 200  # the Team plan's published limit, until Zendesk says less


def test_url_wins_and_oauth_client_is_preferred() -> None:
    env = {
        "ZENDESK_URL": "http://proxy:8080/",
        "ZENDESK_OAUTH_CLIENT_ID": "id",
        "ZENDESK_OAUTH_CLIENT_SECRET": "s",
        "ZENDESK_OAUTH_TOKEN": "t",
        **TOKEN,
    }
    cfg = ZendeskConfig.from_environ(env)
    assert (cfg.base_url, cfg.auth) == ("http://proxy:8080", "oauth_client")
    assert (
        ZendeskConfig.from_environ({"ZENDESK_SUBDOMAIN": "a", "ZENDESK_OAUTH_TOKEN": "t"}).auth
        == "oauth_token"
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({**TOKEN}, "ZENDESK_SUBDOMAIN (e.g. 'acme' for acme.zendesk.com) or ZENDESK_URL"),
        ({"ZENDESK_SUBDOMAIN": "acme.zendesk.com", **TOKEN}, "bare subdomain"),
        ({"ZENDESK_URL": "ftp://x", **TOKEN}, "ZENDESK_URL must be an http(s) URL"),
        ({"ZENDESK_SUBDOMAIN": "a"}, "no Zendesk credentials"),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_EMAIL": "a@b.c"},
            "ZENDESK_EMAIL and ZENDESK_API_TOKEN",
        ),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_OAUTH_CLIENT_ID": "x"},
            "ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET go together",
        ),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_POLL_INTERVAL": "soon", **TOKEN},
            "ZENDESK_POLL_INTERVAL='soon' is not a number",
        ),
        ({"ZENDESK_SUBDOMAIN": "a", "ZENDESK_POLL_INTERVAL": "-5", **TOKEN}, "must be at least 0"),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_MAX_ATTACHMENT_BYTES": "1.5", **TOKEN},
            "not a whole number",
        ),
        ({"ZENDESK_SUBDOMAIN": "a", "ZENDESK_OAUTH_TOKEN_TTL": "100", **TOKEN}, "at least 301"),
        ({"ZENDESK_SUBDOMAIN": "a", "ZENDESK_RATE_LIMIT": "0", **TOKEN}, "at least 1"),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_POLL_INTERVAL": "2", **TOKEN},
            "must be 0 (off) or at least 6 seconds: Zendesk's incremental export",
        ),
        ({"ZENDESK_SUBDOMAIN": "a", "ZENDESK_RATE_LIMIT": "fast", **TOKEN}, "not a whole number"),
        (
            {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_OAUTH_REDIRECT_URI": "/callback", **TOKEN},
            "ZENDESK_OAUTH_REDIRECT_URI must be an absolute http(s) URL",
        ),
        (
            {
                "ZENDESK_SUBDOMAIN": "a",
                "ZENDESK_OAUTH_REDIRECT_URI": "http://bridge.example.com/cb",
                **TOKEN,
            },
            "must be https (plain http only for localhost or 127.0.0.1)",
        ),
    ],
)
def test_each_problem_gets_one_clear_line(env: dict[str, str], needle: str) -> None:
    problems = config_problems(env)
    assert len(problems) == 1, problems
    assert needle in problems[0]


def test_everything_missing_lists_every_problem_and_blocks_the_adapter() -> None:
    assert len(ZendeskHelpdesk.config_problems({})) == 2
    with pytest.raises(ConfigError) as exc:
        ZendeskConfig.from_environ({"ZENDESK_POLL_INTERVAL": "x"})
    assert len(exc.value.problems) == 3


def test_polling_can_be_disabled() -> None:
    cfg = ZendeskConfig.from_environ(
        {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_POLL_INTERVAL": "0", **TOKEN}
    )
    assert cfg.poll_interval == 0


@pytest.mark.parametrize(
    "uri",
    ["https://bridge.example.com/zendesk/oauth", "http://localhost:8976/", "http://127.0.0.1/"],
)
def test_redirect_urls_zendesk_accepts_are_accepted(uri: str) -> None:
    env = {"ZENDESK_SUBDOMAIN": "a", "ZENDESK_OAUTH_REDIRECT_URI": uri, **TOKEN}
    assert config_problems(env) == []
    assert ZendeskConfig.from_environ(env).redirect_uri == uri
