"""A TCP proxy in front of the broker that counts a client's QoS 1 publishes in flight.

Mosquitto 2.0.11 does not enforce its own Receive Maximum for QoS 1, so a test cannot learn
from the broker whether a client kept to it; this proxy reads both directions of the MQTT
stream: a PUBLISH with QoS 1 from the client opens a packet id, the broker's PUBACK closes it.
"""

import contextlib
import socket
import threading
from collections.abc import Callable

from cloud.ingest.wire import packets as p
from cloud.services.ports import free_port

_PUBLISH = 3
_PUBACK = 4
_CONNACK = 2


def _packets(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Complete packets at the front of *buf* (removed): (type, flags, body)."""
    out: list[tuple[int, int, bytes]] = []
    while len(buf) >= 2:
        try:
            length, pos = p.read_varint(buf, 1)
        except IndexError:
            break
        if len(buf) < pos + length:
            break
        out.append((buf[0] >> 4, buf[0] & 0x0F, bytes(buf[pos : pos + length])))
        del buf[: pos + length]
    return out


class CountingProxy:
    def __init__(self, broker_host: str, broker_port: int) -> None:
        self.target = (broker_host, broker_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self.inflight: set[int] = set()
        self.max_inflight = 0
        self.publishes = 0
        self.receive_maximum: int | None = None
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.connections += 1
                self.inflight.clear()  # packet ids belong to one connection
                self._sockets += [client, upstream]
            threading.Thread(
                target=self._pump, args=(client, upstream, self._from_client), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self._from_broker), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, see: Callable[[int, int, bytes], None]
    ) -> None:
        buf = bytearray()
        try:
            while data := src.recv(65536):
                buf += data
                for kind, flags, body in _packets(buf):
                    see(kind, flags, body)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _from_client(self, kind: int, flags: int, body: bytes) -> None:
        if kind != _PUBLISH or not (flags >> 1) & 0x03:
            return
        topic_len = int.from_bytes(body[:2], "big")
        packet_id = int.from_bytes(body[2 + topic_len : 4 + topic_len], "big")
        with self._lock:
            self.publishes += 1
            self.inflight.add(packet_id)
            self.max_inflight = max(self.max_inflight, len(self.inflight))

    def _from_broker(self, kind: int, _flags: int, body: bytes) -> None:
        if kind == _CONNACK:
            self.receive_maximum = p.parse_connack(body).receive_maximum
        elif kind == _PUBACK:
            with self._lock:
                self.inflight.discard(int.from_bytes(body[:2], "big"))

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()
