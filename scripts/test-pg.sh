#!/usr/bin/env bash
# Run the test suite against a throwaway PostgreSQL server (scripts/pg.sh): start it, run
# `BOUNCE_TEST_PG_URL=... bash scripts/test.sh "$@"`, stop it. Fails when the suite fails or when the
# server logged an unexpected ERROR/FATAL line (printed).
# Usage: bash scripts/test-pg.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# A server of its own, so a server started by hand with scripts/pg.sh is left alone.
export BOUNCE_PG_DIR="${BOUNCE_PG_DIR:-${TMPDIR:-/tmp}/bounce-pg-test-$$}"
url="$(bash scripts/pg.sh start)"
stopped=0
cleanup() { [ "$stopped" -eq 1 ] || bash scripts/pg.sh stop || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM  # so the server is stopped on Ctrl-C too
set +e
BOUNCE_TEST_PG_URL="$url" bash scripts/test.sh "$@"
code=$?
set -e
stopped=1
server=0
bash scripts/pg.sh stop || server=1
if [ "$code" -ne 0 ]; then
  exit "$code"
fi
if [ "$server" -ne 0 ]; then
  echo "test-pg.sh: the suite passed but the server logged errors (above)" >&2
  exit 1
fi
