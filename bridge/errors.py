"""The bridge's exception hierarchy.

Delivery code raises exactly one of two kinds of failure so the drain loop can decide
without knowing who failed: TransientError (try again later) or PermanentError
(dead-letter now).
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The environment does not describe a runnable service; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DeliveryError(BridgeError):
    """Sending an event to a helpdesk or to Botpress failed."""

    def __init__(
        self, reason: str, *, response: str | None = None, status: int | None = None
    ) -> None:
        self.reason = reason
        self.response = response
        self.status = status  # the HTTP status that caused it, when there was one
        super().__init__(reason)


class TransientError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 5xx, 429, a dependency not ready yet."""

    def __init__(
        self,
        reason: str,
        *,
        response: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(reason, response=response, status=status)
        self.retry_after = retry_after
        # The request went out and no answer came back: the other side may have applied it.
        self.maybe_applied = maybe_applied


class PermanentError(DeliveryError):
    """Retrying cannot help (a 4xx other than 429, an unresolvable id): dead-letter it."""


class WebhookRejected(BridgeError):
    """An inbound helpdesk webhook failed verification (signature, timestamp, shape)."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        self.status = status
        super().__init__(reason)


class Refused(BridgeError):
    """A person's request (an agent's action, an upload) that cannot be carried out; the
    message says why and `status` is the HTTP answer."""

    status = 400
