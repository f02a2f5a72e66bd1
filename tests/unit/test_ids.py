from __future__ import annotations

import os
import re

import pytest

from bridge import ids


def test_ids_are_unique_url_safe_and_typed() -> None:
    minted = {ids.conversation_id() for _ in range(5000)}
    assert len(minted) == 5000
    assert all(re.fullmatch(r"c_[A-Za-z0-9_-]{16}", i) for i in minted)
    assert ids.user_id().startswith("u_")


def test_event_ids_sort_by_creation_time() -> None:
    first = ids.event_id()
    later = [ids.event_id() for _ in range(10)]
    assert all(e[:13] >= first[:13] for e in later)


def test_unique_hex_has_the_width_asked_for() -> None:
    drawn = {ids.unique_hex(64) for _ in range(5000)}
    assert len(drawn) == 5000
    assert all(re.fullmatch(r"[0-9a-f]{16}", t) for t in drawn)
    assert re.fullmatch(r"[0-9a-f]{10}", ids.unique_hex(40))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_draws_other_values_than_its_parent() -> None:
    # gunicorn and Celery fork their workers: were the generator's state copied and not
    # reseeded, each child would mint the parent's next ids, and the others'.
    ids.unique_hex(64)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draws, then leave without cleanup
        os.write(write, ",".join(ids.unique_hex(64) for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1024).decode().split(",")
    os.close(read)
    os.waitpid(pid, 0)
    mine = [ids.unique_hex(64) for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(mine)
