"""The fake Zendesk's per-minute request limit (benchmarks rely on it answering as Zendesk)."""

from __future__ import annotations

import time

import requests

from tests.support.fake_zendesk import FakeZendesk

WINDOW = 2.0


def _get(fake: FakeZendesk, path: str) -> requests.Response:
    auth = (f"{fake.email}/token", fake.api_token)
    return requests.get(f"{fake.url}{path}", auth=auth, timeout=5)


def _window_start() -> None:
    """Sleep until a window has just begun, so the test's requests share one."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.02)


def test_no_limit_and_no_headers_by_default(fake: FakeZendesk) -> None:
    for _ in range(20):
        r = _get(fake, "/api/v2/users/me")
        assert r.status_code == 200
        assert "X-Rate-Limit" not in r.headers


def test_past_the_limit_answers_429_until_the_window_resets(fake: FakeZendesk) -> None:
    fake.rate_limit(3, WINDOW)
    _window_start()
    answers = [_get(fake, "/api/v2/users/me") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    # The per-minute equivalent of 3 per 2 s; the reset only on list endpoints.
    assert {r.headers["X-Rate-Limit"] for r in answers} == {"90"}
    assert [r.headers["X-Rate-Limit-Remaining"] for r in answers] == ["2", "1", "0"]
    assert "ratelimit-reset" not in answers[0].headers

    refused = _get(fake, "/api/v2/tickets/1/comments")
    assert refused.status_code == 429
    assert refused.text == "Number of allowed API requests per minute exceeded"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    after = float(refused.headers["Retry-After"])
    assert 0 < after <= WINDOW
    # Rounded up to a scaled second (1/60 of the window), written with six digits.
    assert abs(after / (WINDOW / 60) - round(after / (WINDOW / 60))) < 1e-3
    assert refused.headers["ratelimit-reset"] == refused.headers["Retry-After"]
    assert fake.limited == 1

    time.sleep(after)
    again = _get(fake, "/api/v2/users/me")
    assert again.status_code == 200
    assert again.headers["X-Rate-Limit-Remaining"] == "2"


def test_reset_on_all_sends_the_reset_on_every_answer(fake: FakeZendesk) -> None:
    fake.rate_limit(100, WINDOW, reset_on_all=True)
    r = _get(fake, "/api/v2/users/me")
    assert r.status_code == 200
    assert r.headers["ratelimit-remaining"] == r.headers["X-Rate-Limit-Remaining"]
    assert 0 < float(r.headers["ratelimit-reset"]) <= WINDOW
