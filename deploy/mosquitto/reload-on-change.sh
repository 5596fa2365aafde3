#!/bin/sh
# The mosquitto container's command: Mosquitto, plus a SIGHUP to it whenever its password file
# or ACL changes.
#
# Mosquitto 2.0 re-reads password_file and acl_file only on SIGHUP. CityOps rewrites them from
# other containers (broker-auth at start, the API when it issues or revokes device
# credentials), and a process in one container cannot signal a process in another. So this
# starts Mosquitto as its child, compares a digest of the two files (the paths named in the
# config) every few seconds, and sends SIGHUP when they changed. `cityops cloud broker sync`
# writes nothing when nothing changed, so running it again causes no reload.
#
# POSIX sh: busybox in eclipse-mosquitto; tests/deploy/test_broker_reload.py runs it with
# Debian's dash and Mosquitto. Variables for the tests: MOSQUITTO, MOSQUITTO_CONF,
# CITYOPS_RELOAD_INTERVAL_S.
set -u

mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
conf=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
interval=${CITYOPS_RELOAD_INTERVAL_S:-2}
files=$(awk '$1 == "password_file" || $1 == "acl_file" { print $2 }' "$conf")
if [ -z "$files" ]; then
    exec "$mosquitto" -c "$conf"  # nothing to watch
fi

fingerprint() {
    # One word per file: the paths come from the config and hold no spaces.
    # shellcheck disable=SC2086
    cat $files 2>/dev/null | md5sum
}

"$mosquitto" -c "$conf" &
broker=$!
# docker stop: pass SIGTERM on, so Mosquitto saves its persistence file and exits; the loop
# below then ends with Mosquitto's exit status.
trap 'kill -TERM "$broker" 2>/dev/null' TERM INT
seen=$(fingerprint)
while kill -0 "$broker" 2>/dev/null; do
    sleep "$interval" &
    wait $!  # a trapped signal interrupts this wait at once
    now=$(fingerprint)
    if [ "$now" != "$seen" ] && kill -HUP "$broker" 2>/dev/null; then
        echo "reload-on-change: $(echo $files) changed: SIGHUP sent to mosquitto"
        seen=$now
    fi
done
wait "$broker"
