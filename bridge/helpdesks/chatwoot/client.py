"""An authenticated caller of Chatwoot's Application API (`api_access_token` header)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import http_client as http
from bridge.errors import DeliveryError, TransientError
from bridge.helpdesks import budget, redaction
from bridge.helpdesks.budget import Budget
from bridge.helpdesks.chatwoot.config import ChatwootConfig

Json = dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """One file of a multipart message: `attachments[]` in Chatwoot's form."""

    name: str
    content_type: str
    content: bytes


def multipart(fields: Mapping[str, str], files: Sequence[Upload]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (with the boundary)."""
    boundary = f"hitl-bridge-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for f in files:
        # Quotes and line breaks would end the header: the name is only a label.
        safe = "".join(c for c in f.name if c not in '"\r\n\\') or "file"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="attachments[]"; '
            f'filename="{safe}"\r\nContent-Type: {f.content_type}\r\n\r\n'
        )
        parts.append(head.encode() + f.content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ChatwootClient:
    """Sends requests to one Chatwoot account; failures become TransientError/PermanentError."""

    def __init__(
        self,
        config: ChatwootConfig,
        *,
        timeout: float,
        concurrency: int = http.POOL_SIZE,
        transport: http.Transport | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.http = http.Client(concurrency, transport=transport)
        self.budget = budget
        self.account_path = f"/api/v1/accounts/{config.account_id}"

    def url(self, path: str) -> str:
        """`path` under the account (`/conversations`), or from the root (`/api/v1/profile`)."""
        if not path.startswith("/api/"):
            path = f"{self.account_path}{path}"
        return f"{self.config.base_url}{path}"

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        form: tuple[Mapping[str, str], Sequence[Upload]] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty). `form` sends fields and
        files as multipart/form-data. Failure bodies are trimmed and hold no token."""
        headers = {"Accept": "application/json", "api_access_token": self.config.api_token}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data, headers["Content-Type"] = multipart(*form)
        try:
            resp = budget.request(
                self.budget,
                self.http,
                method,
                self.url(path),
                what=what,
                timeout=self.timeout,
                params=params,
                data=data,
                headers=headers,
            )
            if not resp.content:
                return None
            try:
                return resp.json()
            except ValueError as exc:
                # A proxy's HTML page with a 2xx: worth another try later.
                raise TransientError(
                    f"{what}: answer is not JSON", response=resp.text[:4000]
                ) from exc
        except DeliveryError as exc:
            self.scrub(exc)
            raise

    def scrub(self, exc: DeliveryError) -> None:
        """Take the token out of a failure's reason and body, and trim the body."""
        redaction.scrub(exc, [self.config.api_token, self.config.webhook_secret])


def payload_of(data: Any) -> Any:
    """The `payload` Chatwoot wraps most answers in (the answer itself when it has none)."""
    return data.get("payload", data) if isinstance(data, dict) else data
