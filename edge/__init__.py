"""CityOps edge agent: camera -> detector -> tracker -> rules -> events -> MQTT uplink."""
