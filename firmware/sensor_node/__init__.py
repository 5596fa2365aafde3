"""MicroPython sensor node (ESP32 class): logic here, hardware in ``device/``, host port ``host/``.

Every module outside ``host/`` and ``device/`` must run unchanged under MicroPython: no ``typing``
at run time, no dataclasses, no ``__future__``; annotations are ignored by MicroPython.
"""
