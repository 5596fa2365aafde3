"""ESP32 implementations of ``firmware.sensor_node.hal``: clock, RNG, sensors, RTC memory.

Wiring (see firmware/README.md): PMS5003 on UART2 (RX 16, TX 17), SHT31 and QMC5883L on I2C0
(SDA 21, SCL 22), INMP441 on I2S0 (SCK 14, WS 15, SD 32), battery divider (1:2) on GPIO 35.
"""

import os
import time

import machine

from firmware.sensor_node.drivers import magnetometer, noise, pms5003, sht31

# MicroPython on the ESP32 counts from 2000-01-01; the wire needs Unix time.
EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0
RTC_MAX = 2000
STATE_FILE = "/node-state.json"
I2S_RATE = 16000
I2S_BYTES = 4 * I2S_RATE // 10  # 100 ms of 32-bit mono samples
BATTERY_EMPTY_V = 3.3
BATTERY_FULL_V = 4.2


class EspClock:
    def now_ms(self):
        return time.time_ns() // 1_000_000 + EPOCH_OFFSET_S * 1000

    def uptime_ms(self):
        return time.ticks_ms()


class EspRandom:
    def getrandbits(self, k):
        return int.from_bytes(os.urandom(4), "big") >> (32 - k)


class EspBoard:
    def __init__(self, bay_baseline=None):
        self.uart = machine.UART(2, baudrate=9600, rx=16, tx=17, timeout=1200)
        self.i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=100_000)
        self.sht = sht31.Sht31(self.i2c, time.sleep_ms)
        self.i2s = machine.I2S(
            0,
            sck=machine.Pin(14),
            ws=machine.Pin(15),
            sd=machine.Pin(32),
            mode=machine.I2S.RX,
            bits=32,
            format=machine.I2S.MONO,
            rate=I2S_RATE,
            ibuf=I2S_BYTES * 2,
        )
        self.adc = machine.ADC(machine.Pin(35), atten=machine.ADC.ATTN_11DB)
        self.rtc = machine.RTC()
        self.bay = None
        try:
            self.i2c.writeto_mem(magnetometer.QMC5883L_ADDRESS, 0x0B, b"\x01")
            self.i2c.writeto_mem(magnetometer.QMC5883L_ADDRESS, 0x09, b"\x0d")  # 2 G, 200 Hz
            baseline = bay_baseline or self._field()
            self.bay = magnetometer.BayDetector(tuple(baseline))
        except OSError:
            print("no magnetometer: bay_occupied not reported")

    def _field(self):
        raw = self.i2c.readfrom_mem(magnetometer.QMC5883L_ADDRESS, magnetometer.QMC5883L_DATA_REG, 6)
        return magnetometer.decode_qmc5883l(raw)

    def read_sensors(self):
        readings = {}
        try:
            pm = pms5003.find_frame(self.uart.read(96) or b"")
            if pm is not None:
                readings["pm25_ugm3"] = float(pm.pm25)
        except (OSError, ValueError) as exc:
            print("pms5003:", exc)
        try:
            climate = self.sht.measure()
            readings["temperature_c"] = climate.temperature_c
            readings["humidity_pct"] = climate.humidity_pct
        except (OSError, ValueError) as exc:
            print("sht31:", exc)
        try:
            buf = bytearray(I2S_BYTES)
            self.i2s.readinto(buf)  # first read after wake-up settles the microphone
            self.i2s.readinto(buf)
            readings["noise_dba"] = noise.dba(noise.unpack_i2s_32(buf), I2S_RATE)
        except (OSError, ValueError) as exc:
            print("inmp441:", exc)
        if self.bay is not None:
            try:
                readings["bay_occupied"] = 1.0 if self.bay.update(self._field()) else 0.0
            except OSError as exc:
                print("qmc5883l:", exc)
        return readings

    def battery_pct(self):
        volts = 2 * self.adc.read_uv() / 1_000_000
        pct = (volts - BATTERY_EMPTY_V) / (BATTERY_FULL_V - BATTERY_EMPTY_V) * 100
        return min(max(pct, 0.0), 100.0)

    def load_state(self):
        data = bytes(self.rtc.memory())
        if data:
            return data
        try:
            with open(STATE_FILE, "rb") as fh:
                return fh.read()
        except OSError:
            return b""

    def save_state(self, data):
        # RTC memory survives deep sleep without wearing the flash; big states go to a file.
        if len(data) <= RTC_MAX:
            self.rtc.memory(data)
            return
        self.rtc.memory(b"")
        with open(STATE_FILE, "wb") as fh:
            fh.write(data)
