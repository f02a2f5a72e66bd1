"""The Chatwoot adapter's environment variables, read and checked in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from bridge.errors import ConfigError
from bridge.helpdesks import inbound

DEFAULT_POLL_INTERVAL = 30.0
#: Each polled conversation costs two reads: more often than this only spends the API.
MIN_POLL_INTERVAL = 5.0
#: Chatwoot refuses attachments over 40 MB.
MAX_ATTACHMENT_LIMIT = 40 * 1024 * 1024
DEFAULT_MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
#: The URL token's strength: as many characters as a derived one has.
MIN_TOKEN_LENGTH = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ChatwootConfig:
    """Where Chatwoot is, the account and inbox the bridge works in, and how it is told."""

    base_url: str
    account_id: int
    api_token: str
    inbox_id: int
    webhook_token: str = ""
    webhook_secret: str = ""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    rate_limit: int = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ChatwootConfig:
        """Build the configuration; raises ConfigError listing every problem."""
        problems = config_problems(environ)
        if problems:
            raise ConfigError(problems)
        env = _clean(environ)
        return cls(
            base_url=env["CHATWOOT_URL"].rstrip("/"),
            account_id=int(env["CHATWOOT_ACCOUNT_ID"]),
            api_token=env["CHATWOOT_API_TOKEN"],
            inbox_id=int(env["CHATWOOT_INBOX_ID"]),
            webhook_token=env.get("CHATWOOT_WEBHOOK_TOKEN", ""),
            webhook_secret=env.get("CHATWOOT_WEBHOOK_SECRET", ""),
            poll_interval=float(env.get("CHATWOOT_POLL_INTERVAL") or DEFAULT_POLL_INTERVAL),
            max_attachment_bytes=int(
                env.get("CHATWOOT_MAX_ATTACHMENT_BYTES") or DEFAULT_MAX_ATTACHMENT_BYTES
            ),
            rate_limit=int(env.get("CHATWOOT_RATE_LIMIT") or 0),
        )


def derived_token(bridge_secret: str) -> str:
    """The webhook URL's secret token when CHATWOOT_WEBHOOK_TOKEN is not set
    (bridge/helpdesks/inbound.py)."""
    return inbound.derived_url_token(bridge_secret, "chatwoot")


def _clean(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in environ.items() if k.startswith("CHATWOOT_") and v.strip()}


def config_problems(environ: Mapping[str, str]) -> list[str]:
    """One clear line per problem in the CHATWOOT_* variables."""
    env = _clean(environ)
    problems: list[str] = []
    url = env.get("CHATWOOT_URL", "")
    if not url:
        problems.append("CHATWOOT_URL must be set (e.g. https://app.chatwoot.com)")
    else:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"CHATWOOT_URL must be an http(s) URL ({url!r})")
        elif parsed.query or parsed.fragment:
            problems.append("CHATWOOT_URL must be the installation's base URL, no ?query or #")
    for name, what in (
        ("CHATWOOT_ACCOUNT_ID", "the number in /app/accounts/<id>/ of Chatwoot's address"),
        ("CHATWOOT_INBOX_ID", "the API inbox's number, in its settings address"),
    ):
        raw = env.get(name, "")
        if not raw:
            problems.append(f"{name} must be set ({what})")
        elif not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
            problems.append(f"{name}={raw!r} must be a positive whole number ({what})")
    if not env.get("CHATWOOT_API_TOKEN"):
        problems.append(
            "CHATWOOT_API_TOKEN must be set (the access token in Chatwoot's Profile settings)"
        )
    token = env.get("CHATWOOT_WEBHOOK_TOKEN", "")
    if token and (len(token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(token)):
        problems.append(
            f"CHATWOOT_WEBHOOK_TOKEN must be {MIN_TOKEN_LENGTH}+ URL-safe characters "
            "(letters, digits, - and _), e.g. from `openssl rand -base64 32 | tr +/ -_`"
        )
    if not token and not (environ.get("BRIDGE_SECRET") or "").strip():
        problems.append("CHATWOOT_WEBHOOK_TOKEN or BRIDGE_SECRET must be set")

    def number(name: str, minimum: float, maximum: float, *, whole: bool = False) -> None:
        raw = env.get(name, "")
        if not raw:
            return
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            problems.append(f"{name}={raw!r} is not {kind}")
            return
        if value != value or not minimum <= value <= maximum:
            problems.append(f"{name}={raw!r} must be between {minimum:g} and {maximum:g}")

    number("CHATWOOT_POLL_INTERVAL", 0, 86400)
    poll = env.get("CHATWOOT_POLL_INTERVAL", "")
    try:
        too_often = 0 < float(poll or DEFAULT_POLL_INTERVAL) < MIN_POLL_INTERVAL
    except ValueError:
        too_often = False  # reported above
    if too_often:
        problems.append(
            f"CHATWOOT_POLL_INTERVAL={poll!r} must be 0 (off) or at least "
            f"{MIN_POLL_INTERVAL:g} seconds"
        )
    number("CHATWOOT_MAX_ATTACHMENT_BYTES", 1, MAX_ATTACHMENT_LIMIT, whole=True)
    number("CHATWOOT_RATE_LIMIT", 0, 100_000, whole=True)
    return problems
