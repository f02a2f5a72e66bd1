"""Bodies that parse in Python but are not JSON, or would choke a worker later: all 400."""

from __future__ import annotations

import json

import pytest

from bridge.json_codec import loads_strict as parse_json
from tests.conftest import BridgeClient
from tests.unit.conftest import json_of


@pytest.mark.parametrize(
    "payload",
    [
        '{"latitude": NaN, "longitude": 1}',
        '{"latitude": 1, "longitude": Infinity}',
        '{"latitude": 1e999, "longitude": 1}',
        '{"text": "x", "n": -Infinity}',
        '{"text": "lone \\ud800 surrogate"}',
        '{"text": "lone \\uDFFF surrogate"}',
    ],
)
def test_non_json_numbers_and_lone_surrogates_are_rejected(bp: BridgeClient, payload: str) -> None:
    uid, cid = bp.user(), bp.conversation()
    head = f'"type":"botSendsMessage","remoteConversationId":"{cid}","remoteUserId":"{uid}"'
    body = "{" + head + f',"payload":{payload}' + "}"
    r = bp.call("botSendsMessage", body)
    assert r.status_code == 400
    assert json_of(r)["error"] == "malformed JSON"


def test_absurd_nesting_is_400_not_500(bp: BridgeClient) -> None:
    r = bp.call("ping", "[" * 100_000 + "]" * 100_000)
    assert r.status_code == 400
    assert json_of(r)["error"] == "malformed JSON"


def test_a_valid_surrogate_pair_is_accepted(bp: BridgeClient) -> None:
    uid, cid = bp.user(), bp.conversation()
    head = f'"type":"botSendsMessage","remoteConversationId":"{cid}","remoteUserId":"{uid}"'
    body = "{" + head + ',"payload":{"text":"\\ud83d\\ude00"}}'

    assert bp.call("botSendsMessage", body).status_code == 200


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32"])
def test_the_encodings_json_allows_are_read_as_json_loads_reads_them(encoding: str) -> None:
    doc = '{"text": "café 😀 \\u00e9", "n": [1, 2.5, -3e2], "ok": true, "none": null}'
    raw = doc.encode(encoding)
    assert parse_json(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b'{"text": "\xff"}', b"", b"{", b'{"a": 1} x'])
def test_undecodable_or_broken_bodies_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(raw)
