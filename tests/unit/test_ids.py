from __future__ import annotations

import re

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
