"""Files agents send from the console: kept in Redis until they expire, served at signed,
expiring URLs under PUBLIC_BASE_URL (the end user's chat client fetches them from there).

    P:adapter:inbox:file:<fid>   hash   name, type, data (base64), agent; expires with its URL

A URL is `<PUBLIC_BASE_URL>/inbox/files/<fid>.<expiry>.<signature>/<name>`: the signature
(HMAC-SHA256 of BRIDGE_SECRET over the id and the expiry) makes it a capability for that
one file until then, so nobody can list or guess the others. docs/operating.md says what
keeping them in Redis costs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from bridge.config import Settings
from bridge.errors import Refused
from bridge.storage import Store

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_NAME = 120
#: Magic numbers of the pictures a chat client shows inline; anything else is a file.
_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_TOKEN_RE = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}")
# A browser would run these from our origin: they are only ever served as downloads.
_ACTIVE_TYPES = ("html", "xml", "svg", "javascript", "ecmascript", "xhtml")


class FileRefused(Refused):
    """The upload cannot be sent; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SentFile:
    """A stored file and what its message to the end user carries."""

    name: str
    content_type: str
    url: str

    @property
    def message_type(self) -> str:
        return "image" if self.content_type.startswith("image/") else "file"

    @property
    def payload(self) -> dict[str, str]:
        if self.message_type == "image":
            return {"imageUrl": self.url, "title": self.name}
        return {"fileUrl": self.url, "title": self.name}


@dataclass(frozen=True)
class StoredFile:
    name: str
    content_type: str
    data: bytes
    expires: int

    @property
    def inline(self) -> bool:
        return self.content_type.startswith("image/")


def sniff(data: bytes, declared: str) -> str:
    """The type to serve: an image only when its bytes say so (never the uploader's word),
    else the declared type unless a browser would run it, else octet-stream."""
    for magic, kind in _IMAGES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    declared = declared.split(";")[0].strip().lower()
    active = any(a in declared for a in _ACTIVE_TYPES)
    if _TYPE_RE.fullmatch(declared) and not declared.startswith("image/") and not active:
        return declared
    return "application/octet-stream"


def clean_name(name: str) -> str:
    """A file name safe in a URL path, a header and a page: no folders, no control
    characters, at most MAX_NAME characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C" and c not in '"<>')
    name = name.strip(" .")[:MAX_NAME].strip()
    return name or "file"


class Files:
    """The console's sent files."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.redis: Any = store.redis

    def _key(self, fid: str) -> str:
        return self.store.key("adapter", "inbox", "file", fid)

    def _sign(self, fid: str, expires: int, secret: str) -> str:
        msg = f"inbox-file:{fid}:{expires}".encode()
        mac = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def put(self, data: bytes, name: str, declared_type: str, agent: str) -> SentFile:
        """Keep the file until its URL expires; FileRefused when it cannot be sent."""
        base = self.settings.public_base_url
        if not base:
            raise FileRefused(
                "files cannot be sent: set PUBLIC_BASE_URL to the address end users reach "
                "this bridge at"
            )
        if not data:
            raise FileRefused("file: the file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise FileRefused(f"file: at most {MAX_FILE_BYTES // (1024 * 1024)} MiB", 413)
        name = clean_name(name)
        kind = sniff(data, declared_type)
        fid = secrets.token_urlsafe(16)
        ttl = int(self.settings.console_file_ttl)
        expires = int(time.time()) + ttl
        pipe = self.redis.pipeline(transaction=True)
        # Base64: the bridge's Redis client decodes every answer as text (a third more memory).
        stored = base64.b64encode(data).decode()
        pipe.hset(
            self._key(fid), mapping={"name": name, "type": kind, "data": stored, "agent": agent}
        )
        pipe.expireat(self._key(fid), expires)
        pipe.execute()
        token = f"{fid}.{expires}.{self._sign(fid, expires, self.settings.bridge_secret)}"
        return SentFile(name, kind, f"{base}/inbox/files/{token}/{quote(name, safe='')}")

    def get(self, token: str) -> StoredFile | None:
        """The file a URL token names, None when the token is forged, expired or gone."""
        m = _TOKEN_RE.fullmatch(token)
        if m is None:
            return None
        fid, expires, sig = m.group(1), int(m.group(2)), m.group(3)
        secrets_ = [self.settings.bridge_secret, self.settings.bridge_secret_previous]
        if not any(s and hmac.compare_digest(sig, self._sign(fid, expires, s)) for s in secrets_):
            return None
        if expires <= time.time():
            return None
        h = cast(dict[str, str], self.redis.hgetall(self._key(fid)))
        if not h or "data" not in h:
            return None
        return StoredFile(h["name"], h["type"], base64.b64decode(h["data"]), expires)
