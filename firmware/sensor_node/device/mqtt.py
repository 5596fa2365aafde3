"""``umqtt.simple`` as the node expects it: every failure is an ``OSError``, reads time out.

``umqtt.simple`` raises ``MQTTException`` (not an ``OSError``) for a refused CONNECT or a failed
SUBACK, and blocks forever on a half-open socket while waiting for a PUBACK; the node treats both
as "broker away" and buffers.
"""

from umqtt.simple import MQTTClient, MQTTException

SOCKET_TIMEOUT_S = 10


class NodeMqttClient(MQTTClient):
    def connect(self, clean_session=True):
        try:
            result = super().connect(clean_session)
        except MQTTException as exc:
            raise OSError("MQTT connect refused: " + str(exc)) from exc
        self.sock.settimeout(SOCKET_TIMEOUT_S)
        return result

    def publish(self, topic, msg, retain=False, qos=0):
        if self.sock is None:
            raise OSError("MQTT not connected")
        # check_msg() leaves the socket blocking without a timeout: set it again.
        self.sock.settimeout(SOCKET_TIMEOUT_S)
        try:
            super().publish(topic, msg, retain, qos)
        except MQTTException as exc:
            raise OSError("MQTT publish failed: " + str(exc)) from exc

    def subscribe(self, topic, qos=0):
        self.sock.settimeout(SOCKET_TIMEOUT_S)
        try:
            super().subscribe(topic, qos)
        except MQTTException as exc:
            raise OSError("MQTT subscribe refused: " + str(exc)) from exc

    def check_msg(self):
        try:
            super().check_msg()
        except MQTTException as exc:
            raise OSError("MQTT error: " + str(exc)) from exc

    def disconnect(self):
        try:
            super().disconnect()
        except (OSError, AttributeError):
            pass  # never connected, or the socket is already gone
