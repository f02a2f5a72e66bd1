"""A RabbitMQ virtual host of the test run's own, on the machine's RabbitMQ.

Tests never start a RabbitMQ (it takes seconds and a node name); they borrow the local one
(127.0.0.1:5672, guest/guest) through `rabbitmqctl` and isolate themselves in a vhost that
is deleted afterwards, so they neither depend on nor disturb what else uses it. Where
there is no RabbitMQ, or no `rabbitmqctl` to make the vhost, `vhost()` says why and the
tests that need it skip.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid

HOST, PORT = "127.0.0.1", 5672


class Unavailable(Exception):
    """Why the tests cannot have a RabbitMQ vhost here."""


def _ctl(*args: str) -> None:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise Unavailable(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()[:300]}")


class VirtualHost:
    """`url` is an amqp:// URL of a fresh vhost; `delete()` removes it and its queues."""

    def __init__(self) -> None:
        if shutil.which("rabbitmqctl") is None:
            raise Unavailable("rabbitmqctl is not installed (Debian's rabbitmq-server)")
        try:
            socket.create_connection((HOST, PORT), timeout=2).close()
        except OSError as exc:
            raise Unavailable(f"no RabbitMQ listening on {HOST}:{PORT} ({exc})") from None
        self.name = f"hitl-test-{uuid.uuid4().hex[:12]}"
        _ctl("add_vhost", self.name)
        _ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@{HOST}:{PORT}/{self.name}"

    def purge(self, queue: str) -> None:
        """Drop what an earlier test left in `queue`."""
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            channel = conn.channel()
            with contextlib.suppress(Exception):  # not declared yet: nothing to drop
                channel.queue_purge(queue)

    def delete(self) -> None:
        _ctl("delete_vhost", self.name)
