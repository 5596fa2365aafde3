"""Host port of the sensor node (CPython): simulated sensors, a movable clock, paho as umqtt."""
