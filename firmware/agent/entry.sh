#!/bin/sh
# Entry point of the CityOps agent container on balena.
# - settings: /data/agent.yaml if present, else environment only (CITYOPS_EDGE_* device variables);
# - holds the balena update lock while the outbox drains (python -m firmware.update_lock);
# - forwards SIGTERM so the agent drains its outbox and says "offline" before the update.
set -eu

RUN_DIR="${CITYOPS_RUN_DIR:-/run}"
LOCK="${CITYOPS_UPDATE_LOCK:-/tmp/balena/updates.lock}"
CONFIG="${CITYOPS_AGENT_CONFIG:-/data/agent.yaml}"
if [ ! -f "$CONFIG" ]; then
  CONFIG="$RUN_DIR/cityops-agent.yaml"
  echo "{}" >"$CONFIG"  # every setting then comes from CITYOPS_EDGE_* variables
fi
OUTBOX="${CITYOPS_EDGE_UPLINK__OUTBOX__PATH:-/data/outbox.sqlite3}"
mkdir -p "$(dirname "$OUTBOX")"

# Jetson CSI cameras: nvarguscamerasrc talks to the Argus daemon, which must run in the container.
if command -v nvargus-daemon >/dev/null 2>&1; then
  nvargus-daemon &
fi

AGENT_PID=""
TERMINATED=0
trap 'TERMINATED=1; [ -z "$AGENT_PID" ] || kill -TERM "$AGENT_PID" 2>/dev/null || true' TERM INT

python -m firmware.update_lock --outbox "$OUTBOX" --lock "$LOCK" &
LOCK_PID=$!

# `cityops edge run` through the edge sub-app only: the full `cityops` CLI also imports the
# cloud commands, whose dependencies are not in the edge image.
python -c 'import sys; from edge.cli import app; sys.exit(app(prog_name="cityops edge"))' \
  run --config "$CONFIG" &
AGENT_PID=$!
echo "$AGENT_PID" >"$RUN_DIR/cityops-agent.pid"
[ "$TERMINATED" = 0 ] || kill -TERM "$AGENT_PID"  # stopped while starting up

status=0
wait "$AGENT_PID" || status=$?
if [ "$TERMINATED" = 1 ]; then
  # The trapped signal cut `wait` short (status 128+15): wait for the agent's own exit.
  again=0
  wait "$AGENT_PID" || again=$?
  [ "$again" = 127 ] || status=$again  # 127: it had already been collected above
fi
kill -TERM "$LOCK_PID" 2>/dev/null || true
wait "$LOCK_PID" || true
rm -f "$RUN_DIR/cityops-agent.pid"
exit "$status"
