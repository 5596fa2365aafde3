"""``umqtt.simple.MQTTClient`` behaviour over paho-mqtt, so the node logic meets a real broker.

Like umqtt: MQTT 3.1.1, one connection per ``connect``, no automatic reconnect, QoS 1 publish
blocks until the PUBACK, and every network failure surfaces as ``OSError``.
"""

import logging
import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


class PahoUmqttClient:
    def __init__(  # noqa: PLR0917 - mirrors umqtt.simple.MQTTClient's constructor
        self,
        client_id: str,
        server: str,
        port: int = 1883,
        user: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.timeout_s = timeout_s
        self._callback: Callable[[bytes, bytes], None] | None = None
        self._will: tuple[str, bytes, int, bool] | None = None
        self._client: paho.Client | None = None
        self._inbox: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._subscribed = threading.Event()

    def set_callback(self, f: Callable[[bytes, bytes], None]) -> None:
        self._callback = f

    def set_last_will(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self._will = (topic.decode(), msg, qos, retain)

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            self._connected.set()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        log.debug("sensor node %s disconnected: %s", self.client_id, reason)
        self._connected.clear()

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        self._inbox.put((msg.topic.encode(), bytes(msg.payload)))

    def _on_subscribe(self, *_args: object) -> None:
        self._subscribed.set()

    def connect(self, clean_session: bool = True) -> int:
        self.disconnect()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        if self.user is not None:
            client.username_pw_set(self.user, self.password)
        if self._will is not None:
            topic, msg, qos, retain = self._will
            client.will_set(topic, msg, qos, retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._refused = None
        self._connected.clear()
        client.connect(self.server, self.port, self.keepalive)  # raises OSError like umqtt
        client.loop_start()
        self._client = client
        if not self._connected.wait(self.timeout_s) or self._refused is not None:
            self.disconnect()
            raise OSError(f"MQTT connect refused: {self._refused or 'timeout'}")
        return 0

    def _require(self) -> paho.Client:
        if self._client is None or not self._connected.is_set():
            raise OSError("MQTT not connected")
        return self._client

    def publish(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        client = self._require()
        info = client.publish(topic.decode(), msg, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise OSError(f"MQTT publish failed: rc {info.rc}")
        if qos:
            try:
                info.wait_for_publish(self.timeout_s)
            except (RuntimeError, ValueError) as exc:
                raise OSError(f"MQTT publish failed: {exc}") from exc
            if not info.is_published():
                raise OSError("MQTT publish not acknowledged")

    def subscribe(self, topic: bytes, qos: int = 0) -> None:
        client = self._require()
        self._subscribed.clear()
        result, _mid = client.subscribe(topic.decode(), qos)
        if result != paho.MQTT_ERR_SUCCESS or not self._subscribed.wait(self.timeout_s):
            raise OSError("MQTT subscribe failed")

    def check_msg(self) -> None:
        self._require()
        while True:
            try:
                topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if self._callback is not None:
                self._callback(topic, payload)

    def wait_msg(self, timeout_s: float) -> bool:
        """Wait for one message (host helper; umqtt's ``wait_msg`` blocks without a limit)."""
        self._require()
        try:
            topic, payload = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return False
        if self._callback is not None:
            self._callback(topic, payload)
        return True

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        client.loop_stop()
        self._connected.clear()
