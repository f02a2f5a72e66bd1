"""A small, fair HTTP/1.1 load generator: asyncio, keep-alive connections, no dependencies.

The same client measures both sides of every comparison, so its own cost (it shares the
machine's cores) weighs on both alike. Two modes:

- `closed_loop`: C connections send back to back for a fixed time (throughput);
- `open_loop`: requests start on a fixed schedule whatever the answers (latency at a rate);
  latency counts from the scheduled start, so a slow answer cannot hide the ones queued
  behind it (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            n = name.strip().lower()
            if n == b"content-length":
                length = int(value)
            elif n == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _closed(
    host: str, port: int, make: Callable[[int], bytes], connections: int, seconds: float
) -> Result:
    res = Result()
    stop = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        conn = _Conn(host, port)
        while time.perf_counter() < stop:
            counter += 1
            raw = make(counter)
            t0 = time.perf_counter()
            try:
                status = await conn.send(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                res.errors += 1
                conn.close()
                continue
            res.latencies.append(time.perf_counter() - t0)
            res.statuses[status] = res.statuses.get(status, 0) + 1
            res.requests += 1
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    res.seconds = time.perf_counter() - t0
    return res


async def _open(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int,
    on_sent: Callable[[int, float], None] | None,
) -> Result:
    res = Result()
    total = int(rate * seconds)
    pool: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(_Conn(host, port))
    start = time.perf_counter()
    wall0 = time.time()

    async def one(i: int, due: float) -> None:
        conn = await pool.get()
        try:
            if on_sent is not None:
                on_sent(i, wall0 + (due - start))
            status = await conn.send(make(i))
            res.latencies.append(time.perf_counter() - due)
            res.statuses[status] = res.statuses.get(status, 0) + 1
            res.requests += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            res.errors += 1
            conn.close()
        finally:
            pool.put_nowait(conn)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    res.seconds = time.perf_counter() - start
    return res


def closed_loop(
    host: str, port: int, make: Callable[[int], bytes], *, connections: int, seconds: float
) -> Result:
    return asyncio.run(_closed(host, port, make, connections, seconds))


def open_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    on_sent: Callable[[int, float], None] | None = None,
) -> Result:
    return asyncio.run(_open(host, port, make, rate, seconds, connections, on_sent))


def rotate(bodies: Sequence[bytes]) -> Callable[[int], bytes]:
    return lambda i: bodies[i % len(bodies)]
