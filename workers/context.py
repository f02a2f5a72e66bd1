"""What a worker process needs to do its work, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.runtime import Runtime
from workers.botpress import Botpress
from workers.retry import RetryPolicy


@dataclass
class Context(Runtime):
    botpress: Botpress
    retry: RetryPolicy
