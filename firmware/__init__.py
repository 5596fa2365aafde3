"""What is flashed or released to devices: the balena release and the MicroPython sensor node."""
