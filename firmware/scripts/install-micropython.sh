#!/usr/bin/env bash
# Install the MicroPython WebAssembly port (npm) into a git-ignored cache folder, idempotently.
# Used by tests/firmware/test_micropython.py to run the sensor node's pure logic under a real
# MicroPython interpreter. Usage: firmware/scripts/install-micropython.sh [DEST]
set -euo pipefail

PACKAGE="@micropython/micropython-webassembly-pyscript"
VERSION="${CITYOPS_MICROPYTHON_VERSION:-1.27.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-${ROOT}/.cache/micropython}"
MARKER="${DEST}/node_modules/${PACKAGE}/micropython.mjs"

if ! command -v npm >/dev/null 2>&1; then
  echo "install-micropython: npm not found (apt-get install nodejs npm)" >&2
  exit 1
fi

if [ -f "${MARKER}" ] && [ "$(cat "${DEST}/.version" 2>/dev/null || true)" = "${VERSION}" ]; then
  echo "install-micropython: ${PACKAGE}@${VERSION} already in ${DEST}"
  exit 0
fi

mkdir -p "${DEST}"
# The folder ignores itself, so no change to the repository .gitignore is needed.
[ -f "${DEST}/.gitignore" ] || echo "*" >"${DEST}/.gitignore"
[ -f "${DEST}/package.json" ] || echo '{"private": true, "name": "cityops-micropython"}' >"${DEST}/package.json"
npm install --prefix "${DEST}" --no-audit --no-fund --silent --save-exact "${PACKAGE}@${VERSION}"
test -f "${MARKER}"
echo "${VERSION}" >"${DEST}/.version"
echo "install-micropython: installed ${PACKAGE}@${VERSION} into ${DEST}"
