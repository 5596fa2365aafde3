"""Broker security generated from the device registry: password file, ACL, TLS material."""
