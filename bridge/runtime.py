"""The handles a process works with: settings, storage, the helpdesk, and a way to wake workers.

Built once per process (web worker, Celery child, CLI call) and passed down explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bridge import events as ev
from bridge.config import Settings
from bridge.storage import Store

if TYPE_CHECKING:
    from bridge.helpdesks.base import Helpdesk

log = logging.getLogger("hitl.runtime")


class Dispatch(Protocol):
    """Starts Celery tasks (bridge/publisher.py); tests record instead."""

    def drain(self, stream: str, countdown: float) -> None:
        """Drain `stream` after `countdown` seconds (a retry that is due soon)."""

    def pump(self, pump_id: str) -> None:
        """Start pump `pump_id`: it drains woken streams from P:ready one after another."""


@dataclass
class Runtime:
    settings: Settings
    store: Store
    helpdesk: Helpdesk
    dispatch: Dispatch

    def start(self, pump_id: str) -> None:
        """Start the pump a storage call reserved ('' when none was needed)."""
        if not pump_id:
            return
        try:
            self.dispatch.pump(pump_id)
        except Exception:
            # The event is already durable; let the next wake-up (or beat) reserve again.
            log.exception("could not start a pump", extra={"pump": pump_id})
            try:
                self.store.forget_pump(pump_id)
            except Exception:
                # Storage went away too: the reservation expires by itself (PUMP_TTL).
                # Never let this turn an accepted event's 200 into a 503.
                log.warning("could not forget the pump", extra={"pump": pump_id})

    def kick(self, stream: str) -> None:
        """Wake `stream` so a pump drains it (nothing to do if it is already waiting)."""
        self.start(self.store.kick(stream))

    def append(self, event: ev.Event, *, require: Sequence[tuple[str, str]] = ()) -> None:
        """Store `event` durably on its stream and wake the stream."""
        self.start(self.store.append(event, require=require))

    def ring(self, conversation_id: str) -> None:
        """Doorbell: something changed on this conversation's ticket (DESIGN.md invariant 7)."""
        self.start(self.store.ring(ev.Event(ev.RING, ev.stream(ev.INBOUND, conversation_id))))
