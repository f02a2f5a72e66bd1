"""Credentials taken out of the failures a helpdesk's answers turn into.

An error's reason and body go to the dead letters, the logs and the CLI, and a helpdesk
may echo what it was sent (a token in a URL, a Basic auth header in a debug page).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote

from bridge.errors import DeliveryError

#: The most of an answer's body an error keeps (it goes to the dead letters and the CLI).
ERROR_BODY_MAX = 2000
REDACTED = "[redacted]"
#: A secret's tail left at the end of an already cut body is redacted from this many
#: characters on (shorter tails match too much ordinary text to say anything).
_MIN_TAIL = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets`, nor their JSON-, URL- or base64-encoded forms.

    A body may come already cut (bridge/http_client.py keeps 4000 characters), so a secret's
    first characters left at its very end are redacted too.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            b64 = base64.b64encode(secret.encode()).decode()
            forms |= {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), b64}
            forms.add(b64.rstrip("="))  # unpadded, as some encoders write it
    # Longest first: a secret inside another one's encoding is redacted with it.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    for form in forms:
        for k in range(len(form) - 1, _MIN_TAIL - 1, -1):
            if text.endswith(form[:k]):
                return text[:-k] + REDACTED
    return text


def trim(text: str, limit: int = ERROR_BODY_MAX) -> str:
    """At most `limit` characters of `text`, saying so when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(exc: DeliveryError, secrets: Iterable[str]) -> None:
    """Take `secrets` out of a failure's reason and body, and trim the body."""
    secrets = list(secrets)
    reason = redact(exc.reason, secrets)
    if reason != exc.reason:
        exc.reason = reason
        exc.args = (reason,)
    if exc.response:
        exc.response = trim(redact(exc.response, secrets))
