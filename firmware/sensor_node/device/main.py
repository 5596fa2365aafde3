"""ESP32 entry point (flash as ``/main.py``): Wi-Fi, NTP, then the duty cycle forever.

Settings come from ``/node.json`` on the flash (written at provisioning)::

    {"device_id": "air-017", "wifi": {"ssid": "...", "password": "..."},
     "mqtt": {"host": "mqtt.city.example", "port": 8883, "password": "...", "ssl": true},
     "thresholds": [{"id": "pm25", "reading": "pm25_ugm3", "level": 35, "clear": 25}]}
"""

import json
import time

import machine
import network
import ntptime

from firmware.sensor_node.config import NodeConfig, parse_threshold
from firmware.sensor_node.device.board import EspBoard, EspClock, EspRandom
from firmware.sensor_node.device.mqtt import NodeMqttClient
from firmware.sensor_node.node import SensorNode
from firmware.sensor_node.ringbuf import FileStorage, RingBuffer

OUTBOX_FILE = "/outbox.bin"
OUTBOX_SLOTS = 128
SLOT_SIZE = 512
DEEP_SLEEP_MIN_MS = 60_000
POLL_MS = 1000


def wifi_up(ssid, password, timeout_ms=15_000):
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
        start = time.ticks_ms()
        while not wlan.isconnected() and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
            time.sleep_ms(100)
    if wlan.isconnected():
        try:
            ntptime.settime()
        except OSError as exc:
            print("ntp:", exc)
    return wlan.isconnected()


def build(settings):
    device_id = settings["device_id"]
    mqtt_cfg = settings["mqtt"]
    rules = [
        parse_threshold(item, "thresholds." + str(i) + ".")
        for i, item in enumerate(settings.get("thresholds", []))
    ]
    config = NodeConfig(
        device_id,
        interval_s=float(settings.get("interval_s", 60)),
        thresholds=rules,
        deep_sleep=bool(settings.get("deep_sleep", True)),
    )
    client = NodeMqttClient(
        device_id,
        mqtt_cfg["host"],
        port=mqtt_cfg.get("port", 8883),
        user=device_id,
        password=mqtt_cfg["password"],
        keepalive=max(int(config.interval_s * 3), 60),
        ssl=mqtt_cfg.get("ssl", True),
    )
    board = EspBoard(settings.get("bay_baseline"))
    buffer = RingBuffer(FileStorage(OUTBOX_FILE, OUTBOX_SLOTS * SLOT_SIZE), SLOT_SIZE)
    return SensorNode(
        config, board=board, mqtt=client, clock=EspClock(), rng=EspRandom(), buffer=buffer
    )


def run():
    with open("/node.json") as fh:
        settings = json.load(fh)
    wifi = settings["wifi"]
    wifi_up(wifi["ssid"], wifi["password"])
    node = build(settings)
    clock = node.clock
    while True:
        if not network.WLAN(network.STA_IF).isconnected():
            wifi_up(wifi["ssid"], wifi["password"])  # readings still go to flash if this fails
        started = clock.now_ms()
        report = node.cycle()
        print("cycle:", report.readings, "readings", report.events, "events",
              report.sent, "sent", report.buffered, "buffered")
        wait = node.sleep_ms(started)
        if node.config.deep_sleep and wait >= DEEP_SLEEP_MIN_MS:
            node.save_state()
            node.mqtt.disconnect()
            machine.deepsleep(wait)  # the board reboots into this file
        end = time.ticks_add(time.ticks_ms(), wait)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            node.poll()  # a new retained config applies between readings
            time.sleep_ms(min(POLL_MS, max(time.ticks_diff(end, time.ticks_ms()), 0)))


run()
