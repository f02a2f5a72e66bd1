"""The console parts' shared memory (bridge/helpdesks/inbox/parts.py `Memo`)."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.helpdesks.inbox.parts import Memo


def test_consoles_waking_together_compute_once() -> None:
    memo, calls = Memo(size=4), []
    start = threading.Barrier(20)
    results: list[int] = []

    def make() -> int:
        calls.append(1)
        time.sleep(0.05)  # long enough for every other thread to arrive meanwhile
        return 42

    def console() -> None:
        start.wait()
        results.append(memo.get("key", make))

    threads = [threading.Thread(target=console) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [42] * 20 and len(calls) == 1


def test_a_failed_computation_is_not_remembered_and_frees_the_waiters() -> None:
    memo = Memo(size=4)

    def broken() -> int:
        raise RuntimeError("redis went away")

    with pytest.raises(RuntimeError):
        memo.get("key", broken)
    assert memo.get("key", lambda: 7) == 7 and not memo.pending


def test_the_oldest_results_are_forgotten() -> None:
    memo = Memo(size=2)
    for k in range(3):
        memo.get(k, lambda: None)
    assert list(memo.items) == [1, 2]
    assert memo.get(0, lambda: "again") == "again"
