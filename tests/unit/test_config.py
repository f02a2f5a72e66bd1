from __future__ import annotations

import pytest

from bridge.config import Settings, redis_connections_needed
from bridge.errors import ConfigError

GOOD = {"BRIDGE_SECRET": "Kx3_9vQ-Lm2pZr8T"}


def test_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.helpdesk == "inbox"
    assert s.retry_window >= 24 * 3600
    assert s.admin_token is None and s.botpress_webhook_url is None
    assert s.pumps == 256  # the Procfile worker's default: 256 greenlets


def test_pumps_follow_the_worker_concurrency_unless_set() -> None:
    assert Settings.from_env({**GOOD, "WORKER_CONCURRENCY": "4"}).pumps == 4
    assert Settings.from_env({**GOOD, "WORKER_CONCURRENCY": "4", "PUMPS": "12"}).pumps == 12


def test_worker_pool_must_be_one_celery_runs_here() -> None:
    Settings.from_env({**GOOD, "WORKER_POOL": "gevent"})
    for pool in ("threads", "prefork"):
        Settings.from_env({**GOOD, "WORKER_POOL": pool, "WORKER_CONCURRENCY": "4"})
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "WORKER_POOL": "eventlet"})
    assert info.value.problems == [
        "WORKER_POOL must be one of gevent, threads, prefork ('eventlet')"
    ]


def test_a_pool_other_than_gevent_needs_its_own_concurrency() -> None:
    """256 greenlets are cheap; 256 threads burn CPU switching, and 256 processes are 256
    copies of the worker."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "WORKER_POOL": "prefork"})
    assert info.value.problems == [
        "WORKER_POOL=prefork needs WORKER_CONCURRENCY: the default (256) suits gevent only; "
        "e.g. 16 threads, or as many processes as cores"
    ]


def test_secret_is_required_with_a_how_to() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    assert len(info.value.problems) == 1
    assert "BRIDGE_SECRET is not set" in info.value.problems[0]
    assert "token_urlsafe" in info.value.problems[0]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "BRIDGE_SECRET": "short",
                "REDIS_URL": "http://x",
                "BOTPRESS_TOKEN": "t",
                "RETRY_WINDOW_SECONDS": "soon",
                "BOTPRESS_WEBHOOK_URL": "ftp://x",
                "ADMIN_TOKEN": "abc",
            }
        )
    text = "\n".join(info.value.problems)
    for name in (
        "BRIDGE_SECRET",
        "REDIS_URL",
        "BOTPRESS_BOT_ID",
        "RETRY_WINDOW_SECONDS",
        "BOTPRESS_WEBHOOK_URL",
        "ADMIN_TOKEN",
    ):
        assert name in text
    assert len(info.value.problems) == 6


def test_tls_url_wins_and_cert_setting_passes_through() -> None:
    s = Settings.from_env(
        {
            **GOOD,
            "REDIS_URL": "redis://a:6379",
            "REDIS_TLS_URL": "rediss://b:6380",
            "REDIS_SSL_CERT_REQS": "none",
        }
    )
    assert s.redis_url == "rediss://b:6380" and s.redis_ssl_cert_reqs == "none"


def test_lease_must_outlive_the_http_timeout() -> None:
    with pytest.raises(ConfigError, match="LEASE_SECONDS"):
        Settings.from_env({**GOOD, "HTTP_TIMEOUT_SECONDS": "30", "LEASE_SECONDS": "45"})


def test_redis_connections_follow_the_process_settings() -> None:
    # 2 gunicorn processes x (4 threads + 3), a gevent worker's pool (24) + 7, beat 2
    assert redis_connections_needed({}) == 47
    # app.json's settings for Heroku's smallest Redis plan (20 connections)
    assert redis_connections_needed({"WEB_CONCURRENCY": "1", "REDIS_POOL_SIZE": "4"}) == 20
    assert redis_connections_needed({"WEB_THREADS": "many"}) == 47  # unreadable: the default
    # threads and processes: a connection each
    env = {"WORKER_POOL": "threads", "WORKER_CONCURRENCY": "16"}
    assert redis_connections_needed(env) == 14 + 16 + 7 + 2
    assert redis_connections_needed({"WORKER_CONCURRENCY": "8"}) == 14 + 8 + 7 + 2


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a" * 40, "only 1 different"),
        ("abababababababababab", "only 2 different"),
        ("abcdefghabcdefghabcdefgh", "8-character pattern repeated"),
        ("0123456789-0123456789-", "11-character pattern repeated"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "only 2 different"),
        ("passwordpassword", "only 7 different"),
    ],
)
def test_long_but_trivially_guessable_secrets_are_refused(value: str, why: str) -> None:
    for name in ("BRIDGE_SECRET", "ADMIN_TOKEN"):
        env = {**GOOD, name: value}
        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)
        [problem] = info.value.problems
        assert problem.startswith(name) and why in problem and "guessable" in problem


def test_generated_tokens_are_never_refused() -> None:
    import secrets

    for _ in range(2000):
        token = secrets.token_urlsafe(24)
        Settings.from_env({"BRIDGE_SECRET": token, "ADMIN_TOKEN": secrets.token_urlsafe(16)})


def test_proxy_hops_is_a_count() -> None:
    assert Settings.from_env(GOOD).proxy_hops == 0
    assert Settings.from_env({**GOOD, "PROXY_HOPS": "1"}).proxy_hops == 1
    with pytest.raises(ConfigError, match="PROXY_HOPS"):
        Settings.from_env({**GOOD, "PROXY_HOPS": "-1"})


def test_playground_plays_botpress_webhook_and_api_at_the_public_url() -> None:
    from bridge.config import playground_token

    s = Settings.from_env({**GOOD, "PLAYGROUND": "1", "PUBLIC_BASE_URL": "http://localhost:8000/"})
    here = f"http://localhost:8000/playground/botpress/{playground_token(GOOD['BRIDGE_SECRET'])}"
    assert s.playground and s.public_base_url == "http://localhost:8000"
    assert s.botpress_webhook_url == f"{here}/webhook"
    assert s.botpress_api_url == f"{here}/api"
    assert s.botpress_token == playground_token(GOOD["BRIDGE_SECRET"])
    assert s.botpress_bot_id == "playground"
    # The token is the secret's: another secret, another token; never the secret itself.
    assert playground_token("Zq8_4mN-Tr7xWc2K") != s.botpress_token
    assert GOOD["BRIDGE_SECRET"] not in s.botpress_webhook_url
    # Off by default; PUBLIC_BASE_URL alone changes nothing of Botpress's side.
    off = Settings.from_env({**GOOD, "PUBLIC_BASE_URL": "https://bridge.example.com"})
    assert not off.playground and off.botpress_webhook_url is None


def test_playground_is_refused_when_botpress_points_elsewhere() -> None:
    env = {**GOOD, "PLAYGROUND": "1", "PUBLIC_BASE_URL": "http://localhost:8000"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**env, "BOTPRESS_WEBHOOK_URL": "https://webhook.botpress.cloud/x"})
    assert "BOTPRESS_WEBHOOK_URL points elsewhere" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**env, "BOTPRESS_TOKEN": "bp_pat_x", "BOTPRESS_BOT_ID": "b"})
    assert "plays Botpress's API too" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "PLAYGROUND": "1"})
    assert "needs PUBLIC_BASE_URL" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**env, "PLAYGROUND": "maybe"})
    assert "PLAYGROUND='maybe' must be 1 or 0" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "PUBLIC_BASE_URL": "ftp://x"})
    assert "PUBLIC_BASE_URL must be an http(s) URL" in info.value.problems[0]


def test_the_celery_broker_may_be_rabbitmq_while_events_stay_in_redis() -> None:
    s = Settings.from_env({**GOOD, "REDIS_URL": "redis://r:6379/0"})
    assert s.broker_url == "redis://r:6379/0"
    amqp = "amqp://hitl:pw-0123456789abcdef@rabbit:5672/hitl"
    s = Settings.from_env({**GOOD, "REDIS_URL": "redis://r:6379/0", "CELERY_BROKER_URL": amqp})
    assert s.broker_url == amqp and s.redis_url == "redis://r:6379/0"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "CELERY_BROKER_URL": "sqs://queue"})
    assert "CELERY_BROKER_URL must start with one of redis://" in info.value.problems[0]


def test_the_brokers_password_is_never_logged() -> None:
    from bridge.logs import secrets_in

    env = {**GOOD, "CELERY_BROKER_URL": "amqp://hitl:pw-0123456789abcdef@rabbit:5672/hitl"}
    assert "pw-0123456789abcdef" in secrets_in(env)
