#!/usr/bin/env bash
# Benchmark of amocrm-sync on this machine (loopback only; every phase is bounded in time and in
# requests): the form webhook with 10 leads × 20 custom fields at 64 connections, accepted with
# the durable hand-off (answered after JetStream stored all 10 events), and the store consumer's
# backlog at 1,000 webhooks/s. Writes bench/results/amocrm-sync.md.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: bench/amocrm-webhooks.sh [--seconds N] [--lag-seconds N] [--rate N] [--skip-build]

Builds amocrm-sync and amocrm-bench (release), starts amocrm-sync on 127.0.0.1:18084 against a
fresh database amocrm_bench and NATS streams prefixed "bench…", then
  1. throughput: 64 connections post form webhooks (10 leads × 20 custom fields, new lead ids
     in every request) for N seconds (default 20);
  2. lag: a fresh stream, webhooks at --rate per second (default 1000) for --lag-seconds
     (default 30), sampling the store consumer's backlog, then the time it needs to drain;
  3. the same with one lead (20 custom fields) per webhook: 1,000 events/s instead of 10,000.
Needs Postgres and NATS running locally (scripts/dev-deps.sh). Results: bench/results/amocrm-sync.md
USAGE
}

seconds=20
lag_seconds=30
rate=1000
build=1
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --seconds) seconds=${2:?}; shift ;;
    --lag-seconds) lag_seconds=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --skip-build) build=0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

cd "$REPO_ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
PORT=18084
TOKEN=bench-token-3f9a1c7e
PG=postgres://postgres@127.0.0.1:5432
DB=amocrm_bench
NATS=${NATS_URL:-nats://127.0.0.1:4222}
OUT=$REPO_ROOT/bench/results/amocrm-sync.md
WORK=$(mktemp -d /tmp/amocrm-bench.XXXXXX)
PID=""

if [[ $build -eq 1 ]]; then
  log "building amocrm-sync and amocrm-bench (release)"
  cargo build --release -p amocrm-sync --bin amocrm-sync --bin amocrm-bench
fi
SVC=$TARGET_DIR/release/amocrm-sync
BENCH=$TARGET_DIR/release/amocrm-bench

stop_service() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  PID=""
}
PREFIXES=()
cleanup() {
  stop_service
  local p
  for p in "${PREFIXES[@]}"; do
    "$BENCH" --url "http://127.0.0.1:$PORT/" cleanup --nats-url "$NATS" --prefix "$p" >/dev/null 2>&1 || true
  done
  psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_service PREFIX — a fresh database and streams under PREFIX
start_service() {
  local prefix=$1
  PREFIXES+=("$prefix")
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  env -i PATH="$PATH" HOST=127.0.0.1 PORT=$PORT DATABASE_URL="$PG/$DB" DATABASE_MAX_CONNECTIONS=16 \
    NATS_URL="$NATS" NATS_SUBJECT_PREFIX="$prefix" LOG_FORMAT=json LOG_LEVEL=warn \
    AMOCRM_DOMAIN=bench.amocrm.ru AMOCRM_BASE_URL=http://127.0.0.1:9/amocrm \
    AMOCRM_CLIENT_ID=bench-id AMOCRM_CLIENT_SECRET=bench-secret \
    AMOCRM_REDIRECT_URI=http://127.0.0.1:$PORT/api/auth/amo/callback AMOCRM_WEBHOOK_TOKEN=$TOKEN \
    AMOCRM_CONSUMER_CONCURRENCY="${AMOCRM_CONSUMER_CONCURRENCY:-4}" \
    "$SVC" serve >"$WORK/service-$prefix.log" 2>&1 &
  PID=$!
  wait_until 60 "amocrm-sync /ready" curl -fsS -o /dev/null "http://127.0.0.1:$PORT/ready" ||
    die "amocrm-sync did not start: $(tail -n 20 "$WORK/service-$prefix.log")"
}

URL="http://127.0.0.1:$PORT/api/webhooks/amo/$TOKEN"
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')

log "1/3 throughput: 64 connections, ${seconds}s"
start_service "bench${suffix}a"
"$BENCH" --url "$URL" --subdomain bench --max-requests 2000000 \
  throughput --connections 64 --seconds "$seconds" | tee "$WORK/throughput.json"
stored_a=$(psql -X -At "$PG/$DB" -c 'SELECT count(*) FROM amocrm.leads')
stop_service

log "2/3 consumer lag: ${rate} webhooks/s (10 leads each) for ${lag_seconds}s"
start_service "bench${suffix}b"
"$BENCH" --url "$URL" --subdomain bench --max-requests $((rate * lag_seconds + rate)) \
  lag --rate "$rate" --seconds "$lag_seconds" --nats-url "$NATS" --prefix "bench${suffix}b" | tee "$WORK/lag.json"
stored_b=$(psql -X -At "$PG/$DB" -c 'SELECT count(*) FROM amocrm.leads')
stop_service

log "3/3 consumer lag: ${rate} webhooks/s (1 lead each) for ${lag_seconds}s"
start_service "bench${suffix}c"
"$BENCH" --url "$URL" --subdomain bench --leads 1 --max-requests $((rate * lag_seconds + rate)) \
  lag --rate "$rate" --seconds "$lag_seconds" --nats-url "$NATS" --prefix "bench${suffix}c" | tee "$WORK/lag1.json"
stored_c=$(psql -X -At "$PG/$DB" -c 'SELECT count(*) FROM amocrm.leads')
stop_service

have jq || apt_install jq
t=$WORK/throughput.json
l=$WORK/lag.json
l1=$WORK/lag1.json
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "# amocrm-sync benchmark"
  echo
  echo "Run by \`bench/amocrm-webhooks.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $(free -g | awk '/Mem:/{print $2}') GiB;"
  echo "release build, Postgres $(psql -X -At "$PG/postgres" -c 'SHOW server_version' | cut -d' ' -f1) and NATS $(nats-server --version 2>/dev/null | awk '{print $2}' || echo '?') (JetStream, file storage) on the"
  echo "same machine, the load generator (\`amocrm-bench\`) too: all five share the 2 cores."
  echo
  echo "Webhook: amoCRM's form format, $(jq -r .leads_per_webhook "$t") leads × $(jq -r .fields_per_lead "$t") custom fields, $(jq -r .body_bytes "$t") bytes,"
  echo "new lead ids in every request (so JetStream really stores every event; nothing is deduplicated)."
  echo "A request is answered after all its events are acknowledged by JetStream."
  echo
  echo "## 1. Ingest: 64 connections, $(jq -r '.seconds|floor' "$t") s"
  echo
  echo "| webhooks/s | events/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  jq -r '"| \(.webhooks_per_s|floor) | \(.events_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.max) | \(.errors) |"' "$t"
  echo
  echo "Target of the issue: ≥ 5,000 webhooks/s with p99 ≤ 25 ms. Leads stored by the consumer while"
  echo "the load ran (it competes for the same cores): $stored_a."
  echo
  echo "## 2. Consumer lag at $(jq -r .target_rate "$l") webhooks/s for $(jq -r '.seconds|floor' "$l") s"
  echo
  echo "| webhooks/s sent | events/s | p50 ms | p99 ms | backlog max (events) | backlog at stop | drain after stop |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  jq -r '"| \(.webhooks_per_s|floor) | \(.events_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p99) | \(.backlog_max_during_load) | \(.backlog_at_stop) | \(if .drain_seconds then "\(.drain_seconds|.*10|floor/10) s" else "not within the limit" end) |"' "$l"
  echo
  echo "Backlog (pending + unacknowledged events of the store consumer) at the end of each second:"
  echo
  echo "\`\`\`"
  jq -r '.backlog_per_second|map(tostring)|join(" ")' "$l"
  echo "\`\`\`"
  echo
  echo "Leads in Postgres afterwards: $stored_b."
  echo
  echo "## 3. Consumer lag at $(jq -r .target_rate "$l1") webhooks/s of one lead (20 custom fields) for $(jq -r '.seconds|floor' "$l1") s"
  echo
  echo "| webhooks/s sent | events/s | p50 ms | p99 ms | backlog max (events) | backlog at stop | drain after stop |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  jq -r '"| \(.webhooks_per_s|floor) | \(.events_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p99) | \(.backlog_max_during_load) | \(.backlog_at_stop) | \(if .drain_seconds then "\(.drain_seconds|.*10|floor/10) s" else "not within the limit" end) |"' "$l1"
  echo
  echo "\`\`\`"
  jq -r '.backlog_per_second|map(tostring)|join(" ")' "$l1"
  echo "\`\`\`"
  echo
  echo "Leads in Postgres afterwards: $stored_c."
  echo
  echo "## Reading"
  echo
  echo "- Everything runs on the same 2 cores: the service (HTTP, form parsing, JetStream publishing and"
  echo "  the store consumer), nats-server, Postgres and the load generator. A 10-lead webhook is ~64 KB of"
  echo "  form and becomes 10 JetStream messages (~3 KB each, custom fields included) and 10 row writes."
  echo "- The store consumer writes one event per statement (lock, ordered upsert and stage history in one"
  echo "  round trip). It is CPU-bound here, at roughly the events/s that the drain figures above imply; a"
  echo "  webhook of 10 leads is 10 such writes, so 1,000 of them per second are 10,000 writes per second,"
  echo "  which this machine cannot absorb while it also takes the webhooks: the backlog grows and drains"
  echo "  after the load (nothing is lost: every event is in JetStream until it is stored). At 1,000"
  echo "  one-lead webhooks per second (table 3) the backlog stays bounded."
  echo "- The ingest targets of the issue (≥ 5,000 webhooks/s, p99 ≤ 25 ms, i.e. ≥ 50,000 durable"
  echo "  JetStream publishes per second of ~3 KB each on top of parsing ~320 MB/s of forms) are not"
  echo "  reached on this machine. What would raise the figures: more cores (replicas share the durable"
  echo "  consumer; the HTTP side is stateless), NATS and Postgres on their own hosts, and writing a batch"
  echo "  of events per statement in the consumer (not done: each event is its own transaction today)."
  echo
  echo "Raw results:"
  echo
  echo "\`\`\`json"
  cat "$t" "$l" "$l1"
  echo "\`\`\`"
} >"$OUT"
log "results written to ${OUT#"$REPO_ROOT"/}"
