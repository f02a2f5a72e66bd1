"""An authenticated caller of the Freshdesk API v2, within the account's shared API budget.

Freshdesk (developers.freshdesk.com/api, "Authentication", "Rate limit", "Error handling"):
HTTP Basic with the API key as user name and `X` as password; a per-minute limit per
account, announced on every answer in `X-RateLimit-Total` / `X-RateLimit-Remaining` /
`X-RateLimit-Used-CurrentRequest`, with 429 and `Retry-After` (seconds) beyond it; errors
as `{"description": "Validation failed", "errors": [{"field", "message", "code"}]}`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from bridge import http_client as http
from bridge.errors import DeliveryError, TransientError
from bridge.helpdesks import budget, redaction
from bridge.helpdesks.budget import Budget
from bridge.helpdesks.freshdesk.config import FreshdeskConfig

Json = dict[str, Any]

#: What a file name in a part's header may not hold (it would end the header or the quote).
_UNSAFE = re.compile(r'["\\\r\n]')

#: A form field: (name, value) for text, (name, (file name, content type, bytes)) for a file.
FormField = tuple[str, str | tuple[str, str, bytes]]


def multipart(fields: Sequence[FormField]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (attachments go as `attachments[]`
    parts beside the other fields: the API reference's "Create a Note" with attachments)."""
    boundary = f"hitl-bridge-{secrets.token_hex(16)}"
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            filename, ctype, data = value
            quoted = _UNSAFE.sub("_", filename)
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{quoted}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            out += data
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class FreshdeskClient:
    """Sends requests to one Freshdesk account; failures become TransientError/PermanentError."""

    def __init__(
        self,
        config: FreshdeskConfig,
        *,
        timeout: float,
        concurrency: int = http.POOL_SIZE,
        transport: http.Transport | None = None,
        budget: Budget | None = None,
        patient: bool = False,
    ) -> None:
        self.config = config
        self.base_url = config.base_url
        self.timeout = timeout
        self.http = http.Client(concurrency, auth=(config.api_key, "X"), transport=transport)
        self.budget = budget  # None: tests that count requests exactly
        self.patient = patient  # every request waits its turn however long (the CLI)

    def secrets(self) -> list[str]:
        """Every credential this client holds or sends, as it may appear in an answer."""
        found = [self.config.api_key, self.config.webhook_token]
        basic = self.http.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            found.append(basic.removeprefix("Basic "))
        return [s for s in found if s]

    def scrub(self, exc: DeliveryError) -> None:
        """Take the credentials out of a failure's reason and body, and trim the body."""
        redaction.scrub(exc, self.secrets())

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        form: Sequence[FormField] | None = None,
        patient: bool = False,
    ) -> http.Response:
        """One request, with a JSON `body` or a multipart `form`.

        Within the account's budget: a request waits for its turn up to MAX_WAIT seconds
        (a delivery is retried later rather than hold its worker), or, `patient` (a poll
        round's reads), until PATIENCE has passed, through 429s too.
        """
        hdrs = {"Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data, hdrs["Content-Type"] = multipart(form)
        try:
            return budget.request(
                self.budget,
                self.http,
                method,
                self.url(path),
                what=what,
                timeout=self.timeout,
                patient=patient or self.patient,
                params=params,
                data=data,
                headers=hdrs,
            )
        except DeliveryError as exc:
            self.scrub(exc)
            raise

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        form: Sequence[FormField] | None = None,
        patient: bool = False,
    ) -> Any:
        """Like `send`, returning the decoded JSON (an object or a list; {} when empty)."""
        resp = self.send(
            method, path, what=what, params=params, body=body, form=form, patient=patient
        )
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            # A proxy's HTML error page with a 2xx: worth another try later.
            err = TransientError(f"{what}: answer is not JSON", response=resp.text[:4000])
            self.scrub(err)
            raise err from exc

    def obj(self, method: str, path: str, *, what: str, **kwargs: Any) -> Json:
        """`call` for an endpoint that answers one JSON object."""
        data = self.call(method, path, what=what, **kwargs)
        if not isinstance(data, dict):
            raise TransientError(f"{what}: answer is not a JSON object")
        return data

    def rows(self, path: str, *, what: str, **kwargs: Any) -> list[Json]:
        """`call` (GET) for a list endpoint: its objects."""
        data = self.call("GET", path, what=what, **kwargs)
        if not isinstance(data, list):
            raise TransientError(f"{what}: answer is not a JSON list")
        return [r for r in data if isinstance(r, dict)]


def errors(body: str | None) -> list[Json]:
    """The `errors` of Freshdesk's error body ([] when it has none readable)."""
    try:
        found = json.loads(body or "").get("errors") or []
    except (ValueError, AttributeError, TypeError):
        return []
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def refusal(body: str | None, limit: int = 300) -> str:
    """What an error body says was wrong, in a line ("status: …"); "refused" if nothing."""
    found = [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message") or "")
        for e in errors(body)
    ]
    if not found:
        try:
            found = [str(json.loads(body or "").get("description") or "")]
        except (ValueError, AttributeError, TypeError):
            found = []
    text = "; ".join(dict.fromkeys(f.strip() for f in found if f.strip())) or "refused"
    return text if len(text) <= limit else text[: limit - 1] + "…"
