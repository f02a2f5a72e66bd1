from __future__ import annotations

import random

from bridge.http_client import parse_retry_after
from workers.retry import RetryPolicy


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base=1, cap=60, window=3600)
    rng = random.Random(1)
    waits = [policy.delay(n, first_failed=1000, now=1000, rng=rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        bound = min(60, 2 ** (n - 1))
        assert wait is not None and bound / 2 <= wait <= bound
    assert len({round(w or 0, 6) for w in waits}) == len(waits)  # jittered, not identical


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base=1, cap=60, window=3600)
    assert policy.delay(1, first_failed=0, now=0, retry_after=30) == 30


def test_window_spent_means_give_up_and_last_try_lands_at_the_end() -> None:
    policy = RetryPolicy(base=1, cap=1800, window=100)
    assert policy.delay(3, first_failed=1000, now=1100) is None
    wait = policy.delay(20, first_failed=1000, now=1090)
    assert wait == 10
    # No failure recorded yet (0): the window starts now.
    assert policy.delay(1, first_failed=0, now=1000) is not None


def test_default_window_covers_a_day() -> None:
    assert RetryPolicy().window >= 24 * 3600


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40) == 60


def test_only_a_request_that_went_out_unanswered_is_maybe_applied() -> None:
    import socket
    import threading

    import pytest

    from bridge.errors import TransientError
    from bridge.http_client import Client, request

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
    with pytest.raises(TransientError) as info:
        request(Client(), "POST", url, what="t", timeout=0.3, json={})
    assert info.value.maybe_applied  # read timeout: the request went out
    silent.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(TransientError) as info:
        request(Client(), "POST", f"http://127.0.0.1:{port}/x", what="t", timeout=0.3)
    assert not info.value.maybe_applied  # refused: nothing was sent
