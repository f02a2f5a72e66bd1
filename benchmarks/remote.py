"""A remote Botpress and Zendesk that answer late: `python -m benchmarks.remote PORT`.

Real endpoints answer in 100-500 ms from another region. This stands in for both at
thousands of calls a second on one core (an asyncio protocol, no framework), so what the
latency benchmark measures is the worker, not the fake:

- `POST /hook/<route>`: Botpress's webhook, answered `{}` after `bp_delay`;
- `PUT /api/v2/tickets/<id>`: Zendesk's add-comment, answered with the ticket and its
  audit after `hd_delay`; users and tickets are created at once (the set-up of a run);
- `POST /control`: `{"bp_delay": s, "hd_delay": s}` sets the delays and clears the record;
- `GET /stats`: calls received, and order: every text carries `#<n>` sequence numbers,
  each conversation's (or ticket's) numbers must rise call after call, never repeat.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

STATE: dict[str, Any] = {}
_SEQ = re.compile(rb"#(\d+)")


def reset(bp_delay: float = 0.0, hd_delay: float = 0.0) -> None:
    STATE.update(
        bp_delay=bp_delay,
        hd_delay=hd_delay,
        calls=0,
        numbers=0,
        out_of_order=0,
        duplicates=0,
        last={},
        seen=set(),
        audit=0,
    )


def record(key: str, body: bytes) -> None:
    """Check the sequence numbers of one call against the conversation's last."""
    STATE["calls"] += 1
    for raw in _SEQ.findall(body):
        n = int(raw)
        STATE["numbers"] += 1
        if (key, n) in STATE["seen"]:
            STATE["duplicates"] += 1
            continue
        STATE["seen"].add((key, n))
        if n <= STATE["last"].get(key, -1):
            STATE["out_of_order"] += 1
        STATE["last"][key] = n


def next_id() -> int:
    STATE["ids"] = STATE.get("ids", 1000) + 1
    return int(STATE["ids"])


def answer(status: int, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def route(method: bytes, path: bytes, body: bytes) -> tuple[float, bytes]:
    """(delay, raw answer) for one request."""
    if path.startswith(b"/hook/"):
        key = json.loads(body).get("remoteConversationId", "")
        record(key, body)
        return STATE["bp_delay"], answer(200, b"{}")
    if method == b"PUT" and path.startswith(b"/api/v2/tickets/"):
        tid = int(path.rsplit(b"/", 1)[1].split(b".")[0])
        record(f"ticket {tid}", body)
        STATE["audit"] += 1
        out = {
            "ticket": {"id": tid, "status": "open"},
            "audit": {"events": [{"type": "Comment", "id": STATE["audit"], "public": True}]},
        }
        return STATE["hd_delay"], answer(200, json.dumps(out).encode())
    if method == b"POST" and path == b"/api/v2/users/create_or_update":
        return 0.0, answer(
            200, json.dumps({"user": {"id": next_id(), "role": "end-user"}}).encode()
        )
    if method == b"POST" and path == b"/api/v2/tickets":
        return 0.0, answer(201, json.dumps({"ticket": {"id": next_id()}}).encode())
    if path == b"/control":
        reset(**json.loads(body))
        return 0.0, answer(200, b"{}")
    if path == b"/stats":
        keep = ("calls", "numbers", "out_of_order", "duplicates")
        return 0.0, answer(200, json.dumps({k: STATE[k] for k in keep}).encode())
    return 0.0, answer(404, b'{"error":"not here"}')


class Remote(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4 : end + 4 + length], self.buf[end + 4 + length :]
            method, path, _ = head[0].split(b" ", 2)
            delay, out = route(method, path, body)
            if delay:
                asyncio.get_running_loop().call_later(delay, self._write, out)
            else:
                self._write(out)

    def _write(self, out: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(out)


async def serve(port: int) -> None:
    reset()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Remote, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
