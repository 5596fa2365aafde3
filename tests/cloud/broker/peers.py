"""MQTT 5 test clients that record what the broker answers: CONNACK, PUBACK, SUBACK codes."""

import queue
import threading
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class Endpoint(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class Peer:
    """A paho MQTT 5 client that records reason codes and messages."""

    def __init__(self, broker: Endpoint, user: str, password: str) -> None:
        self.connack: queue.Queue[int] = queue.Queue()
        self.pubacks: queue.Queue[int] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.messages: queue.Queue[bytes] = queue.Queue()
        self.gone = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(int(rc.value))
        self.client.on_publish = lambda _c, _u, _m, rc, _p: self.pubacks.put(int(rc.value))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.messages.put(bytes(msg.payload))
        self.client.on_disconnect = lambda *_args: self.gone.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.rc = self.connack.get(timeout=5)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: Properties
    ) -> None:
        self.subacks.put([int(c.value) for c in codes])

    def publish(self, topic_name: str, payload: bytes = b"{}", *, retain: bool = False) -> int:
        self.client.publish(topic_name, payload, qos=1, retain=retain)
        return self.pubacks.get(timeout=5)

    def subscribe(self, filter_: str) -> int:
        self.client.subscribe(filter_, qos=1)
        return self.subacks.get(timeout=5)[0]

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network loop, so loop_stop is quick
        self.client.loop_stop()


def connect_rc(broker: Endpoint, user: str, password: str) -> int:
    peer = Peer(broker, user, password)
    peer.close()
    return peer.rc


OK = (0, 16)  # success, or success with no matching subscribers
DENIED = 135
