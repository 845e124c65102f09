#!/usr/bin/env bash
# Benchmark of messenger-api's hub and message API on this machine (not a test: it measures).
# Starts a release build of messenger-api on loopback against a fresh database and a unique
# NATS prefix, drives it with the load generator services/messenger-api/examples/hub_bench.rs
# (on the same machine), and writes bench/results/messenger-api.md. Bounded in count and time;
# cleans up its database, streams and processes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

usage() {
  cat <<'EOF2'
Usage: bench/messenger-hub.sh [--quick] [--connections N] [--group-messages N] [--rate N]
                              [--rate-secs N] [--pairs N] [--http-secs N] [--skip-build]
                              [--out FILE]

Measures, against messenger-api built with --release:
  1. server RSS per idle hub connection with 10 000 connections
  2. delivery latency of one message to every member of a 10 000-member group (p99)
  3. 1:1 delivery latency at 2 000 messages/s (p99)
  4. POST /api/messages throughput with Postgres persistence
and writes the figures, with the machine's description, to bench/results/messenger-api.md.

Options:
  --quick     1 000 connections, 5 group messages, 500 msg/s for 5 s (a smoke run)
  --connections N   idle hub connections (default 10 000; they are also the group's members)
  --group-messages N  messages to the whole group (default 20; 0: only the warm-up message)
  --rate N, --rate-secs N, --pairs N  1:1 phase: msg/s, seconds, private chats (2000, 10, 200)
  --http-secs N     seconds of POST /api/messages load (default 10)
  --skip-build      use the release binaries already in target/release (bench/run.sh)
  --out FILE  where to write the report
More than ~28,000 connections need more local ports than Linux's default ephemeral range
(32768-60999, one per client socket towards the one server address): as root the script widens
net.ipv4.ip_local_port_range for the run and puts it back afterwards.
Environment: TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), NATS_URL
(nats://127.0.0.1:4222), BENCH_PORT (18085). Raises the open-files limit for itself.
EOF2
}

connections=10000 group_messages=20 rate=2000 rate_secs=10 pairs=200 http_secs=10 build=1
out=$REPO_ROOT/bench/results/messenger-api.md
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --quick) connections=1000 group_messages=5 rate=500 rate_secs=5 pairs=50 ;;
    --connections) connections=${2:?}; shift ;;
    --group-messages) group_messages=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --rate-secs) rate_secs=${2:?}; shift ;;
    --pairs) pairs=${2:?}; shift ;;
    --http-secs) http_secs=${2:?}; shift ;;
    --skip-build) build=0 ;;
    --out) out=${2:?}; shift ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

ADMIN_DB=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${NATS_URL:-nats://127.0.0.1:4222}
PORT=${BENCH_PORT:-18085}
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB=messenger_bench_$suffix
DB_URL=${ADMIN_DB%/*}/$DB
PREFIX=bench$suffix
SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/messenger-bench.XXXXXX)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}

# The server and the load generator each hold one socket per connection (plus a few hundred
# more): the limit is per process.
((connections >= 1 && connections <= 60000)) || die "--connections must be 1..60000"
want_fds=$((connections + 4000 > 65536 ? connections + 4000 : 65536))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= connections + 2000)) ||
  die "open-files limit $(ulimit -n) is too low for $connections connections (need root or a higher hard limit)"
# Local ports: every client socket towards 127.0.0.1:$PORT needs its own.
PORT_RANGE_SAVED=""
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
if ((port_hi - port_lo + 1 < connections + 2 * pairs + 2000)); then
  new_lo=$((port_hi - connections - 2 * pairs - 4000))
  ((new_lo >= 1024)) || new_lo=1024
  if [[ $(id -u) -eq 0 ]] && echo "$new_lo $port_hi" >/proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
    PORT_RANGE_SAVED="$port_lo $port_hi"
    warn "ephemeral ports $port_lo-$port_hi are too few for $connections connections: widened to $new_lo-$port_hi for this run"
  else
    die "ephemeral ports $port_lo-$port_hi are too few for $connections connections (need root to widen net.ipv4.ip_local_port_range)"
  fi
fi

server_pid=""
cleanup() {
  [[ -n $PORT_RANGE_SAVED ]] && echo "$PORT_RANGE_SAVED" >/proc/sys/net/ipv4/ip_local_port_range
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  psql -X -q "$ADMIN_DB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  delete_streams || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Deletes this run's two JetStream streams (NATS text protocol; no client needed).
delete_streams() {
  local hp=${NATS#*://}
  hp=${hp%%/*}
  python3 - "${hp%:*}" "${hp##*:}" "${PREFIX^^}_EVENTS" "${PREFIX^^}_COMMANDS" <<'PY'
import socket, sys
host, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.create_connection((host, port), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.bench 1\r\n')
for n in names:
    s.sendall(f"PUB $JS.API.STREAM.DELETE.{n} _INBOX.bench 0\r\n\r\n".encode())
    while not f.readline().startswith(b"MSG"):
        pass
    f.readline()
PY
}

cd "$REPO_ROOT"
if [[ $build -eq 1 ]]; then
  log "building messenger-api and the load generator (--release)"
  cargo build --release -p messenger-api --bin messenger-api --example hub_bench
fi

log "database $DB, NATS prefix $PREFIX, server on 127.0.0.1:$PORT"
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_DB" -c "CREATE DATABASE $DB" >/dev/null
env -u Jwt__Secret -u OTEL_EXPORTER_OTLP_ENDPOINT \
  DATABASE_URL="$DB_URL" DATABASE_MAX_CONNECTIONS=16 NATS_URL="$NATS" NATS_SUBJECT_PREFIX="$PREFIX" \
  HOST=127.0.0.1 PORT="$PORT" JWT_SECRET="$SECRET" MESSENGER_FILES_DIR="$WORK/files" \
  MAX_BODY_BYTES=$((connections * 48 + 1048576)) MESSENGER_MAX_GROUP_MEMBERS=$((connections + 10000)) \
  MESSENGER_GROUP_MEMBERS_PER_REQUEST=$((connections + 10000)) MESSENGER_GROUP_MEMBERS_PER_HOUR=$((connections + 10000)) \
  MESSENGER_SEND_BURST=1000000 MESSENGER_SEND_RATE_PER_MINUTE=10000000 LOG_FORMAT=json LOG_LEVEL=warn \
  "$TARGET_DIR/release/messenger-api" serve >"$WORK/server.log" 2>&1 &
server_pid=$!
wait_until 60 "messenger-api /ready" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/ready" ||
  { tail -n 20 "$WORK/server.log" >&2; die "messenger-api did not start"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "running the load generator (about 2 minutes; load average now $load_before)"
timeout 900 "$TARGET_DIR/release/examples/hub_bench" \
  --base-url "http://127.0.0.1:$PORT" --database-url "$DB_URL" --jwt-secret "$SECRET" \
  --server-pid "$server_pid" --connections "$connections" --group-messages "$group_messages" \
  --rate "$rate" --rate-secs "$rate_secs" --pairs "$pairs" \
  --http-concurrency 32 --http-secs "$http_secs" --out "$WORK/report.md"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pg=$(psql -X -At "$ADMIN_DB" -c 'show server_version' 2>/dev/null || echo '?')
nats=$(nats-server --version 2>/dev/null || echo '?')
mkdir -p "$(dirname "$out")"
{
  echo "# messenger-api benchmark"
  echo
  echo "Produced by \`bench/messenger-hub.sh --connections $connections --group-messages $group_messages --rate $rate --rate-secs $rate_secs\` on $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, $(uname -sr); Postgres $pg (fsync on, synchronous_commit"
  echo "$(psql -X -At "$ADMIN_DB" -c 'show synchronous_commit' 2>/dev/null || echo '?')), $nats with JetStream (file storage), all on this"
  echo "machine. messenger-api built with \`--release\`, one replica, \`DATABASE_MAX_CONNECTIONS=16\`,"
  echo "\`LOG_LEVEL=warn\`. The load generator (\`services/messenger-api/examples/hub_bench.rs\`, tokio,"
  echo "tokio-tungstenite) runs beside the server on the same 2 cores over loopback, so every figure"
  echo "includes the cost of generating the load and of receiving it. Clients speak the SignalR JSON"
  echo "protocol (handshake, invocations, pings every 15 s). Load average (1, 5, 15 min) before the"
  echo "run: $load_before; after: $load_after — anything else running on the machine shows there."
  echo
  cat "$WORK/report.md.part"
} >"$out"
log "report written to ${out#"$REPO_ROOT"/}"
cat "$out"
