"""bridge.json_codec answers as the standard library's json does, whichever parser ran."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge import json_codec


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def outcome(parse: Any, raw: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(raw)
    except (ValueError, RecursionError):
        return "error", None


def agree(fast: Any, reference: Any, raw: Any) -> None:
    (got, value), (want, expected) = outcome(fast, raw), outcome(reference, raw)
    assert got == want, (raw, got, want)
    assert same(value, expected), (raw, value, expected)


finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | finite
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Numbers as they are written: integers from 1 to 25 digits, fractions, exponents.
numbers = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?\Z")
# Fragments of JSON text, well-formed or not.
_PIECES = (
    '{"a":',
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    '"x"',
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    "1",
    "-0",
    "1e400",
    "12345678901234567890",
    "NaN",
    "Infinity",
    "true",
    "null",
    " ",
    '"\\u0000"',
    '"é"',
    "\t",
    "\x01",
    '"a\nb"',
    "1.5",
    "01",
    ".5",
)
fragments = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)


@settings(max_examples=500, deadline=None)
@given(documents)
def test_written_then_read_as_json_would(doc: Any) -> None:
    text = json_codec.dumps(doc)
    assert same(json.loads(text), json.loads(json.dumps(doc)))
    agree(json_codec.loads, json.loads, text)
    agree(json_codec.loads, json.loads, text.encode())
    agree(json_codec.loads_strict, json_codec._loads_strict_json, text.encode())


@settings(max_examples=500, deadline=None)
@given(numbers)
# The edges of 64 bits: orjson reads the two outside as floats.
@example("-9223372036854775808")
@example("-9223372036854775809")
@example("18446744073709551615")
@example("18446744073709551616")
def test_numbers_are_read_digit_for_digit_as_json_reads_them(number: str) -> None:
    for text in (number, f'{{"n":[{number}]}}'):
        agree(json_codec.loads, json.loads, text)
        agree(json_codec.loads_strict, json_codec._loads_strict_json, text.encode())


@settings(max_examples=500, deadline=None)
@given(fragments)
def test_any_text_is_accepted_or_refused_as_json_would(text: str) -> None:
    agree(json_codec.loads, json.loads, text)
    for encoding in ("utf-8", "utf-8-sig", "utf-16"):
        try:
            raw = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        agree(json_codec.loads_strict, json_codec._loads_strict_json, raw)


@pytest.mark.parametrize(
    "doc",
    [
        {"big": 2**64, "neg": -(2**63) - 1},  # past 64 bits: orjson refuses to write them
        {1: "a key that is not a str"},
        {"lone": "\ud800"},  # orjson refuses it; json escapes it
        [1.5, -0.0, 5e-324, 1e16],
    ],
)
def test_what_orjson_cannot_write_is_written_as_json_writes_it(doc: Any) -> None:
    text = json_codec.dumps(doc)
    assert json.loads(text) == json.loads(json.dumps(doc))
    text.encode()  # plain UTF-8, whatever the document held


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), Point(1), {1, 2}])
def test_what_json_refuses_to_write_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        json_codec.dumps({"v": value})


def test_non_finite_floats_are_written_as_null() -> None:
    """Not JSON; never from outside (loads_strict refuses them), documented as null."""
    assert json.loads(json_codec.dumps([math.nan, math.inf])) == [None, None]


def test_what_json_loads_reads_beyond_json_is_still_read() -> None:
    """Stored events are read with `loads`, which must go on reading what `json` wrote."""
    assert math.isnan(json_codec.loads('{"n": NaN}')["n"])
    assert json_codec.loads('"\\ud800"') == "\ud800"
    assert json_codec.loads(b"\xef\xbb\xbf[1]") == [1]
