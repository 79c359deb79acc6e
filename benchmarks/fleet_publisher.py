"""A minimal MQTT 3.1.1 client for load generation: QoS 1 PUBLISH packets, pipelined.

The ingest benchmark measures Mosquitto -> ingest -> PostgreSQL on one machine. Its load
stands for a fleet of gateways, whose CPU is not on that machine; published through paho,
the publisher alone used about a third of a core here (~110 us per message), taken from
the processes being measured. This client encodes each PUBLISH with a few byte
operations, writes them in large blocks and counts the PUBACKs, so the load costs almost
nothing. Packet layout: MQTT 3.1.1 (OASIS standard), sections 3.1 CONNECT, 3.2 CONNACK,
3.3 PUBLISH, 3.4 PUBACK; lengths use the variable-length "remaining length" (2.2.3).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence

# Packet ids are 16 bits and 0 is not allowed: at most this many un-acknowledged.
MAX_IN_FLIGHT = 60_000


class PublishError(RuntimeError):
    """The broker refused the connection or answered with something unexpected."""


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    name = topic.encode()
    body = struct.pack(">H", len(name)) + name + struct.pack(">H", packet_id) + payload
    return b"\x32" + remaining_length(len(body)) + body  # PUBLISH, QoS 1, no DUP, no retain


def connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    # Protocol name "MQTT", level 4, flags: clean session; keepalive 0 (off).
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack(">H", len(cid)) + cid
    return b"\x10" + remaining_length(len(body)) + body


class FleetPublisher:
    """Publishes many messages on one connection and waits until the broker has them all."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self._sock = socket.create_connection((host, port), timeout=30)
        self._sock.sendall(connect_packet(client_id))
        connack = self._recv_exactly(4)
        if connack[:2] != b"\x20\x02" or connack[3] != 0:
            raise PublishError(f"connection refused: {connack.hex()}")
        self._acked = 0
        self._cond = threading.Condition()
        self._error: str | None = None
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise PublishError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        pending = b""
        while True:
            try:
                chunk = self._sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._error = self._error or "connection closed"
                    self._cond.notify_all()
                return
            pending += chunk
            whole = len(pending) // 4 * 4
            acks, pending = pending[:whole], pending[whole:]
            if any(acks[i : i + 2] != b"\x40\x02" for i in range(0, len(acks), 4)):
                with self._cond:
                    self._error = f"unexpected packet from the broker: {acks[:8].hex()}"
                    self._cond.notify_all()
                return
            with self._cond:
                self._acked += len(acks) // 4
                self._cond.notify_all()

    def publish_all(self, messages: Sequence[tuple[str, bytes]], timeout_s: float = 600.0) -> None:
        """Publish every (topic, payload) at QoS 1; return once all are acknowledged."""
        start = self._acked
        block: list[bytes] = []
        for i, (topic, payload) in enumerate(messages):
            block.append(publish_packet(topic, payload, i % 65_535 + 1))
            if len(block) == 256 or i == len(messages) - 1:
                with self._cond:
                    # Never more un-acknowledged than there are packet ids.
                    ok = self._cond.wait_for(
                        lambda n=i: self._error is not None or n - (self._acked - start) < MAX_IN_FLIGHT, timeout_s
                    )
                    if self._error or not ok:
                        raise PublishError(self._error or "broker did not acknowledge in time")
                self._sock.sendall(b"".join(block))
                block = []
        with self._cond:
            ok = self._cond.wait_for(lambda: self._error is not None or self._acked - start >= len(messages), timeout_s)
            if self._error or not ok:
                raise PublishError(self._error or "broker did not acknowledge in time")

    def close(self) -> None:
        try:
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self._sock.close()
            self._reader.join(5)
