"""The Freshdesk adapter's environment variables, read and checked in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from bridge.errors import ConfigError

DEFAULT_POLL_INTERVAL = 60.0
#: One poll lists the changed tickets (a request a page): more often than this would only
#: spend the account's per-minute budget.
MIN_POLL_INTERVAL = 10.0
#: Freshdesk takes at most 20 MB of attachments on one conversation (API reference, "Create
#: a Note": "The total size of these attachments cannot exceed 20MB").
DEFAULT_MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
#: Requests per minute the bridge allows itself on the account, all processes together:
#: the Growth plan's published limit. `X-RateLimit-Total` lowers it when the account has
#: less (trial accounts: 50).
DEFAULT_RATE_LIMIT = 200
#: How long the bridge's links to agents' files work (PUBLIC_BASE_URL/files/...).
DEFAULT_FILE_LINK_TTL = 7 * 24 * 3600
_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: What a token in the webhook URL may hold: one URL path segment, hard to guess.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{24,128}$")


@dataclass(frozen=True)
class FreshdeskConfig:
    """Where the Freshdesk account is and how the bridge authenticates to it."""

    base_url: str
    api_key: str
    webhook_token: str = ""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    rate_limit: int = DEFAULT_RATE_LIMIT
    file_link_ttl: int = DEFAULT_FILE_LINK_TTL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> FreshdeskConfig:
        """Build the configuration; raises ConfigError listing every problem."""
        problems = config_problems(environ)
        if problems:
            raise ConfigError(problems)
        env = _clean(environ)
        return cls(
            base_url=_base_url(env),
            api_key=env["FRESHDESK_API_KEY"],
            webhook_token=env.get("FRESHDESK_WEBHOOK_TOKEN", ""),
            poll_interval=float(env.get("FRESHDESK_POLL_INTERVAL") or DEFAULT_POLL_INTERVAL),
            max_attachment_bytes=int(
                env.get("FRESHDESK_MAX_ATTACHMENT_BYTES") or DEFAULT_MAX_ATTACHMENT_BYTES
            ),
            rate_limit=int(env.get("FRESHDESK_RATE_LIMIT") or DEFAULT_RATE_LIMIT),
            file_link_ttl=int(env.get("FRESHDESK_FILE_LINK_TTL_SECONDS") or DEFAULT_FILE_LINK_TTL),
        )


def _clean(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in environ.items() if k.startswith("FRESHDESK_")}


def _domain(raw: str) -> str:
    """`acme` from `acme`, `acme.freshdesk.com` or `https://acme.freshdesk.com/`."""
    host = raw.lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    return host.removesuffix(".freshdesk.com")


def _base_url(env: Mapping[str, str]) -> str:
    url = env.get("FRESHDESK_URL", "")
    if url:
        return url.rstrip("/")
    return f"https://{_domain(env['FRESHDESK_DOMAIN'])}.freshdesk.com"


def config_problems(environ: Mapping[str, str]) -> list[str]:
    """One clear line per problem in the FRESHDESK_* variables."""
    env = _clean(environ)
    problems: list[str] = []

    url, domain = env.get("FRESHDESK_URL", ""), env.get("FRESHDESK_DOMAIN", "")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"FRESHDESK_URL must be an http(s) URL ({url!r})")
    elif domain:
        if not _DOMAIN_RE.match(_domain(domain)):
            problems.append(
                "FRESHDESK_DOMAIN must be the account's name, e.g. 'acme' for "
                f"acme.freshdesk.com ({domain!r})"
            )
    else:
        problems.append(
            "FRESHDESK_DOMAIN (e.g. 'acme' for acme.freshdesk.com) or FRESHDESK_URL must be set"
        )
    key = env.get("FRESHDESK_API_KEY", "")
    if not key:
        problems.append(
            "FRESHDESK_API_KEY must be set (Freshdesk: profile picture > Profile settings > "
            "View API key)"
        )
    elif ":" in key or any(c.isspace() for c in key):
        problems.append("FRESHDESK_API_KEY holds a ':' or a space: paste the key alone")
    token = env.get("FRESHDESK_WEBHOOK_TOKEN", "")
    if token and not _TOKEN_RE.match(token):
        problems.append(
            "FRESHDESK_WEBHOOK_TOKEN must be 24 to 128 URL-safe characters (letters, digits, "
            "'-', '_'); leave it unset to use the token derived from BRIDGE_SECRET"
        )

    def number(name: str, minimum: float, maximum: float) -> float | None:
        raw = env.get(name, "")
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number")
            return None
        if value != value or not minimum <= value <= maximum:
            problems.append(f"{name}={raw!r} must be at least {minimum:g} and at most {maximum:g}")
            return None
        return value

    def integer(name: str, minimum: int, maximum: int) -> None:
        raw = env.get(name, "")
        if raw and not raw.isdigit():
            problems.append(f"{name}={raw!r} is not a whole number")
        else:
            number(name, minimum, maximum)

    poll = number("FRESHDESK_POLL_INTERVAL", 0, 24 * 3600)
    if poll is not None and 0 < poll < MIN_POLL_INTERVAL:
        problems.append(
            f"FRESHDESK_POLL_INTERVAL={env['FRESHDESK_POLL_INTERVAL']!r} must be 0 (off) or at "
            f"least {MIN_POLL_INTERVAL:g} seconds: each poll spends the account's API budget"
        )
    integer("FRESHDESK_MAX_ATTACHMENT_BYTES", 1, 20 * 1024 * 1024)
    integer("FRESHDESK_RATE_LIMIT", 1, 100_000)
    integer("FRESHDESK_FILE_LINK_TTL_SECONDS", 60, 365 * 24 * 3600)
    return problems
