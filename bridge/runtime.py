"""The handles a process works with: settings, storage, the helpdesk, and a way to wake workers.

Built once per process (web worker, Celery child, CLI call) and passed down explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge import events as ev
from bridge.config import Settings
from bridge.storage import Store

if TYPE_CHECKING:
    from workers.adapters.base import Helpdesk

log = logging.getLogger("hitl.runtime")

#: Publishes a drain task for a stream, after a countdown in seconds (0: now).
Publish = Callable[[str, float], None]


@dataclass
class Runtime:
    settings: Settings
    store: Store
    helpdesk: Helpdesk
    publish: Publish

    def kick(self, stream: str) -> None:
        """Make sure a drain task is queued for `stream` (at most one waits at a time)."""
        if self.store.kick(stream):
            self.wake(stream)

    def wake(self, stream: str) -> None:
        """Publish a drain task for `stream` whose kick flag the caller already holds."""
        try:
            self.publish(stream, 0)
        except Exception:
            # The event is already durable; the sweeper will find it once the flag is gone.
            log.exception("could not publish a drain task", extra={"stream": stream})
            try:
                self.store.clear_kick(stream)
            except Exception:
                # Storage went away too: the flag expires by itself (KICK_TTL_MS). Never
                # let this turn an accepted event's 200 into a 503 that says "not accepted".
                log.warning("could not clear the kick flag", extra={"stream": stream})

    def append(self, event: ev.Event, *, require: Sequence[tuple[str, str]] = ()) -> None:
        """Store `event` durably on its stream and wake a worker for it."""
        if self.store.append(event, require=require):
            self.wake(event.stream)

    def ring(self, conversation_id: str) -> None:
        """Doorbell: something changed on this conversation's ticket (DESIGN.md invariant 7)."""
        event = ev.Event(ev.RING, ev.stream(ev.INBOUND, conversation_id))
        if self.store.ring(event):
            self.wake(event.stream)
