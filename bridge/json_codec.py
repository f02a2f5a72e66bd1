"""JSON in and out of the bridge: what the standard library's `json` gives, faster.

On a `botSendsMessage`, reading the body takes 11,500 instructions this way against 28,700
with `json`, and writing its event 4,700 against 42,000: a tenth of the request. orjson is
used only where its answer is the one `json` gives; for the rest `json` answers, so the
results never depend on which one ran:

- integers past 64 bits: orjson reads them as floats (losing digits) and cannot write
  them, so a document with 19 digits in a row is read by `json`, and one orjson cannot
  write is written by `json`;
- anything orjson refuses (not UTF-8, a byte order mark, UTF-16 or -32, depth past 1,024)
  goes to `json`, which reads it or raises as before;
- types `json` refuses (datetimes, dataclasses) are refused by both.

One difference is kept: a float that is not finite (NaN, ±Infinity) is not JSON, and
`dumps` writes it as null where `json` writes `NaN`. Every document from outside is read
by `loads_strict`, which refuses those.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# orjson turns an integer past 64 bits into a float; any such integer has 19 digits or more.
# Found by mapping every digit to "0" and looking for 19 in a row: a tenth of what a regular
# expression costs.
_DIGITS_AS_ZERO = bytes(ord("0") if b in b"0123456789" else ord(" ") for b in range(256))
_LONG_RUN = b"0" * 19
# What `json` refuses to write, orjson must refuse too (it would write these itself).
_AS_JSON_DOES = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# Built once: json.dumps with any option builds a new encoder on every call. ASCII: a lone
# surrogate (which orjson refuses) must come out escaped, never as text Redis cannot take.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj: Any) -> str:
    """Compact JSON text of `obj`."""
    try:
        return orjson.dumps(obj, option=_AS_JSON_DOES).decode()
    except orjson.JSONEncodeError:  # an int past 64 bits, a key that is not a str, ...
        return _compact(obj)


_UNREAD = object()


def _orjson_loads(data: bytes) -> Any:
    """orjson's reading of `data`, or _UNREAD where `json` must decide (and name the problem)."""
    if _LONG_RUN in data.translate(_DIGITS_AS_ZERO):
        return _UNREAD
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _UNREAD


def loads(raw: str | bytes) -> Any:
    """What `json.loads(raw)` returns (and raises)."""
    body = _orjson_loads(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    return json.loads(raw) if body is _UNREAD else body


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads with hooks builds a new decoder on every call.
_STRICT = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


def loads_strict(raw: bytes) -> Any:
    """Strict JSON (RFC 8259) from outside: no NaN or Infinity, no number that overflows to
    one, and no lone surrogate escape; each would be accepted by `json.loads` and choke a
    worker later. Raises ValueError (or RecursionError for absurd nesting).
    """
    # orjson refuses all three itself; past 64 bits and in any doubt, json decides.
    body = _orjson_loads(raw)
    return _loads_strict_json(raw) if body is _UNREAD else body


def _loads_strict_json(raw: bytes) -> Any:
    """`loads_strict` with the standard library alone (what the fast path must agree with)."""
    # What json.loads does with bytes: UTF-8, -16 or -32, told apart by their first bytes.
    body = _STRICT.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    if b"\\ud" in raw or b"\\uD" in raw:
        json.dumps(body, ensure_ascii=False).encode()  # UnicodeEncodeError is a ValueError
    return body
