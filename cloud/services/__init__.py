"""Local service processes (Mosquitto, InfluxDB) started by the demo and the test harness."""
