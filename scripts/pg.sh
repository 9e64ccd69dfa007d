#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests: a temporary data directory, a free port on 127.0.0.1,
# durability off for speed, everything logged to a file.
#
#   url=$(bash scripts/pg.sh start)   # prints postgresql://bounce:PASS@127.0.0.1:PORT/bounce
#   bash scripts/pg.sh url            # prints the same URL again
#   bash scripts/pg.sh stop           # stops it, removes it; exit 1 when the log has unexpected ERROR/FATAL
#   bash scripts/pg.sh status         # exit 0 when it is running
#
# One server per state directory: BOUNCE_PG_DIR (default: one per checkout, under ${TMPDIR:-/tmp}).
# As root it runs the server as the system user bounce-ci (created when missing; `nobody` when it cannot be),
# and installs Debian's postgresql package when /usr/lib/postgresql/15/bin is missing and apt-get exists.
# BOUNCE_PG_BIN overrides the server binaries' directory. BOUNCE_PG_EXPECTED is an extra extended regex of
# log lines that stop should not count as errors.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN="${BOUNCE_PG_BIN:-/usr/lib/postgresql/15/bin}"
find_bin() {
  if [ -z "${BOUNCE_PG_BIN:-}" ] && [ ! -x "$PGBIN/initdb" ]; then
    # A newer Debian ships a newer server: the schema needs 15 or later.
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then PGBIN="$newest"; fi
  fi
}
find_bin
KEY="$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
STATE="${BOUNCE_PG_DIR:-${TMPDIR:-/tmp}/bounce-pg-$(id -u)-$KEY}"
DATA="$STATE/data"
LOG="$STATE/server.log"
DBUSER=bounce
DBNAME=bounce

# Lines that are part of a normal run: a fast shutdown (or a forced DROP DATABASE) ends open sessions and
# any autovacuum worker busy in a database being dropped, and a client that knocks while the server is still
# starting is turned away.
EXPECTED='terminating (connection|autovacuum process) due to administrator command|the database system is (starting up|shutting down)'

say() { echo "pg.sh: $*" >&2; }
die() { say "$*"; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$(cat "$STATE/owner")" -- "$@"
  else
    "$@"
  fi
}

install_server() {
  [ -x "$PGBIN/initdb" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing PostgreSQL (apt-get install -y postgresql)"
    # Only the binaries are wanted: no cluster of its own listening on 5432.
    mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] \
      || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    export DEBIAN_FRONTEND=noninteractive
    local opts=(-y -q -o Dpkg::Options::=--force-confold)
    apt-get install "${opts[@]}" postgresql >&2 || { apt-get update -q >&2 && apt-get install "${opts[@]}" postgresql >&2; }
    find_bin
  fi
  [ -x "$PGBIN/initdb" ] || die "no PostgreSQL server at $PGBIN (install Debian's postgresql package, or set BOUNCE_PG_BIN)"
}

pick_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    id -un
  elif id -u bounce-ci >/dev/null 2>&1; then
    echo bounce-ci
  elif useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bounce-ci >/dev/null 2>&1 \
       || id -u bounce-ci >/dev/null 2>&1; then
    echo bounce-ci
  else
    echo nobody
  fi
}

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 40000))  # a taken one fails to start and another is tried
  fi
}

running() {
  [ -f "$STATE/url" ] && [ -d "$DATA" ] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  if running; then
    cat "$STATE/url"
    return 0
  fi
  install_server
  rm -rf "$STATE" "$STATE.log"
  mkdir -p "$STATE"
  pick_owner >"$STATE/owner"
  local owner pass
  owner="$(cat "$STATE/owner")"
  pass="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  printf '%s\n' "$pass" >"$STATE/pwfile"
  chmod 700 "$STATE"
  chmod 600 "$STATE/pwfile"
  chown -R "$owner" "$STATE"
  # The owner walks into the state directory through its parents: they must be traversable.
  as_owner test -x "$STATE" || die "$owner cannot reach $STATE (set BOUNCE_PG_DIR to a directory it can)"

  as_owner "$PGBIN/initdb" -D "$DATA" -U "$DBUSER" --pwfile="$STATE/pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-host=scram-sha-256 --auth-local=trust --no-sync >"$STATE/initdb.log" 2>&1 \
    || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  rm -f "$STATE/pwfile"

  local port tries=0
  while :; do
    port="$(free_port)"
    cat >>"$DATA/postgresql.conf" <<EOF
# scripts/pg.sh: throwaway server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$STATE'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_min_error_statement = error
lc_messages = 'C'
EOF
    if as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    # Another process may have taken the port between picking and binding: try another one.
    if [ "$tries" -ge 5 ]; then
      cat "$LOG" >&2 || true
      die "the server did not start"
    fi
    say "start failed on port $port, trying another"
  done

  PGPASSWORD="$pass" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$DBUSER" -d postgres \
    -c "CREATE DATABASE $DBNAME" >&2 || die "could not create database $DBNAME"
  echo "postgresql://$DBUSER:$pass@127.0.0.1:$port/$DBNAME" >"$STATE/url"
  cat "$STATE/url"
}

stop() {
  [ -d "$STATE" ] || die "nothing to stop (no $STATE)"
  if [ -d "$DATA" ] && running; then
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || say "pg_ctl stop failed"
  fi
  local bad=""
  if [ -f "$LOG" ]; then
    local pattern="$EXPECTED"
    [ -n "${BOUNCE_PG_EXPECTED:-}" ] && pattern="$pattern|$BOUNCE_PG_EXPECTED"
    # A backend that crashed logs only at LOG level: count it too.
    bad="$(grep -E '(ERROR|FATAL|PANIC):|server process \(PID [0-9]+\) was terminated by signal' "$LOG" \
      | grep -Ev "$pattern" || true)"
  fi
  if [ -n "$bad" ]; then
    local kept="${STATE}.log"
    cp "$LOG" "$kept"
    rm -rf "$STATE"
    say "the server logged errors (whole log kept in $kept):"
    printf '%s\n' "$bad" >&2
    exit 1
  fi
  rm -rf "$STATE" "$STATE.log"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) [ -f "$STATE/url" ] || die "not started"; cat "$STATE/url" ;;
  status) running ;;
  *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
