#!/usr/bin/env bash
# Benchmark of vk-connector on this machine (loopback only; every phase is bounded in time and
# in messages): the VK callback ingest with the durable hand-off and its ceiling without the
# publish, the relay draining a backlog into the sandbox Chatwoot, the end-to-end latency from
# callback to Chatwoot, and the idle RSS. Writes bench/results/vk-connector.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: bench/vk-connector.sh [--quick] [--seconds N] [--backlog N] [--senders N] [--rate N]
                             [--e2e-seconds N] [--skip-build] [--out FILE]

Builds vk-connector, sandbox and crates/vk-bench (release), then, against a fresh database
vk_bench and NATS streams prefixed "vkbench…", with the sandbox (fake VK + Chatwoot) on loopback:
  1. ingest: wrk, 64 connections, N seconds (default 20), POST /vk/callback/{id} with a VK
     message_new and a new event_id in every request, answered "ok" after JetStream acked it;
     then the same requests against vk-callback-ceiling (the route's verify + parse + normalize
     + envelope serialisation, answered without publishing);
  2. relay drain: a backlog of --backlog messages (default 20,000) from --senders VK users
     (default 1,000) published while vk-connector is stopped; then vk-connector starts and the
     time until the sandbox Chatwoot holds all of them is measured;
  3. end-to-end latency: --rate callbacks/s (default 1,000) from the same senders for
     --e2e-seconds (default 30), callback sent -> Chatwoot POST .../messages at the sandbox;
  4. idle RSS (VmRSS) of vk-connector after start, before phase 1's load.
Every phase has a hard time limit; the whole run takes about 3 minutes (at most ~8).

Options:
  --quick        smoke run: 3 s per ingest run, a 2,000-message backlog, 3 s of latency load
  --skip-build   use the release binaries already in target/release
  --out FILE     where to write the report (default bench/results/vk-connector.md)
Environment: TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), NATS_URL
(nats://127.0.0.1:4222), BENCH_SANDBOX_PORT (18190), BENCH_VK_PORT (18181),
BENCH_CEILING_PORT (18182); CONSUMER_CONCURRENCY and DATABASE_MAX_CONNECTIONS are passed to
vk-connector when set (else its defaults). Needs Postgres and NATS running (scripts/dev-deps.sh);
installs wrk and jq when missing.
USAGE
}

seconds=20
backlog=20000
senders=1000
rate=1000
e2e_seconds=30
settle=5
quick=0
build=1
out=$REPO_ROOT/bench/results/vk-connector.md
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1 seconds=3 backlog=2000 e2e_seconds=3 settle=2 ;;
    --seconds) seconds=${2:?}; shift ;;
    --backlog) backlog=${2:?}; shift ;;
    --senders) senders=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --e2e-seconds) e2e_seconds=${2:?}; shift ;;
    --skip-build) build=0 ;;
    --out) out=${2:?}; shift ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
((seconds >= 1 && seconds <= 120)) || die "--seconds must be 1..120"
((backlog >= 1 && backlog <= 200000)) || die "--backlog must be 1..200000"
((senders >= 1 && senders <= backlog)) || die "--senders must be 1..backlog"
((rate >= 1 && rate <= 20000)) || die "--rate must be 1..20000"
((e2e_seconds >= 1 && e2e_seconds <= 120)) || die "--e2e-seconds must be 1..120"

cd "$REPO_ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
ADMIN_DB=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${NATS_URL:-nats://127.0.0.1:4222}
SANDBOX_PORT=${BENCH_SANDBOX_PORT:-18190}
VK_PORT=${BENCH_VK_PORT:-18181}
CEILING_PORT=${BENCH_CEILING_PORT:-18182}
SANDBOX_URL=http://127.0.0.1:$SANDBOX_PORT
DB=vk_bench
DB_URL=${ADMIN_DB%/*}/$DB
GROUP_ID=227000042
SECRET=bench-secret-7c41e9a2d05b3f68
CONFIRMATION=b3nchc0nf
CALLBACK_ID=bench-callback-5d20a8e4c71b9f03
CW_WEBHOOK_ID=bench-chatwoot-91f3b6d2a48e7c05
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/vk-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

have wrk || apt_install wrk
have jq || apt_install jq

if [[ $build -eq 1 ]]; then
  log "building vk-connector, sandbox and vk-bench (release)"
  cargo build --release -p vk-connector -p sandbox -p vk-bench
fi
VK_BIN=$TARGET_DIR/release/vk-connector
CEILING_BIN=$TARGET_DIR/release/vk-callback-ceiling
SANDBOX_BIN=$TARGET_DIR/release/sandbox
BENCH=$TARGET_DIR/release/vk-bench
for b in "$VK_BIN" "$CEILING_BIN" "$SANDBOX_BIN" "$BENCH"; do
  [[ -x $b ]] || die "$b not found (run without --skip-build)"
done

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$SANDBOX_PORT" "$VK_PORT" "$CEILING_PORT"; do
  port_busy "$p" && die "127.0.0.1:$p is in use; set BENCH_SANDBOX_PORT / BENCH_VK_PORT / BENCH_CEILING_PORT"
done

# ---------------------------------------------------------------- processes
SVC_PID="" SANDBOX_PID=""
# stop PID — SIGTERM, up to 10 s, then SIGKILL; only processes this script started.
stop() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  warn "pid $pid did not stop within 10 s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
stop_service() { stop "$SVC_PID"; SVC_PID=""; }
stop_sandbox() { stop "$SANDBOX_PID"; SANDBOX_PID=""; }
PREFIXES=()
cleanup() {
  local rc=$? p
  stop_service
  stop_sandbox
  if [[ $rc -ne 0 ]]; then
    for p in "$WORK"/*.log; do
      [[ -s $p ]] && { printf '\n--- last lines of %s ---\n' "$(basename "$p")" >&2; tail -n 15 "$p" >&2; }
    done
  fi
  for p in "${PREFIXES[@]}"; do
    timeout 30 "$BENCH" cleanup --nats-url "$NATS" --prefix "$p" >/dev/null 2>&1 || true
  done
  psql -X -q "$ADMIN_DB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fresh_database() {
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_DB" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
}

# start_sandbox NAME — a fresh sandbox (empty Chatwoot), no webhooks (the relay is measured).
start_sandbox() {
  stop_sandbox
  env -i PATH="$PATH" RUST_LOG=warn "$SANDBOX_BIN" --listen "127.0.0.1:$SANDBOX_PORT" \
    --vk-group-id "$GROUP_ID" >"$WORK/sandbox-$1.log" 2>&1 &
  SANDBOX_PID=$!
  wait_until 30 "the sandbox" curl -fsS -o /dev/null "$SANDBOX_URL/_sandbox/vk/sent" ||
    die "the sandbox did not start"
}

# service_env PREFIX PORT — the environment vk-connector (and the ceiling) run with.
service_env() {
  local prefix=$1 port=$2
  SERVICE_ENV=(PATH="$PATH" HOST=127.0.0.1 PORT="$port" DATABASE_URL="$DB_URL" NATS_URL="$NATS"
    NATS_SUBJECT_PREFIX="$prefix" LOG_FORMAT=json LOG_LEVEL=warn
    VK_GROUP_ID="$GROUP_ID" VK_ACCESS_TOKEN=vk-test-token VK_SECRET="$SECRET"
    VK_CONFIRMATION="$CONFIRMATION" VK_API_VERSION=5.199 VK_CALLBACK_ID="$CALLBACK_ID"
    VK_API_URL="$SANDBOX_URL/vk/method" VK_LONG_POLL=false
    CHATWOOT_BASE_URL="$SANDBOX_URL/chatwoot" CHATWOOT_API_ACCESS_TOKEN=cw-test-token
    CHATWOOT_ACCOUNT_ID=1 CHATWOOT_INBOX_ID=1 CHATWOOT_WEBHOOK_ID_VK="$CW_WEBHOOK_ID"
    RECONCILE_INTERVAL_SECS=0)
  [[ -n ${CONSUMER_CONCURRENCY:-} ]] && SERVICE_ENV+=(CONSUMER_CONCURRENCY="$CONSUMER_CONCURRENCY")
  [[ -n ${DATABASE_MAX_CONNECTIONS:-} ]] && SERVICE_ENV+=(DATABASE_MAX_CONNECTIONS="$DATABASE_MAX_CONNECTIONS")
  return 0
}

# start_bin BIN PREFIX PORT LOG [ARGS...] — starts vk-connector or the ceiling; does not wait.
start_bin() {
  local bin=$1 prefix=$2 port=$3 logname=$4
  shift 4
  service_env "$prefix" "$port"
  (cd "$WORK" && exec env -i "${SERVICE_ENV[@]}" "$bin" "$@" >"$WORK/$logname.log" 2>&1) &
  SVC_PID=$!
}

# wait_ready LOG PORT — polls /ready for up to 60 s; fails at once when the process exited.
wait_ready() {
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$2/ready" 2>/dev/null; do
    kill -0 "$SVC_PID" 2>/dev/null || die "$1 exited: $(tail -n 5 "$WORK/$1.log" 2>/dev/null)"
    ((SECONDS < deadline)) || die "$1 did not get ready in 60 s: $(tail -n 5 "$WORK/$1.log" 2>/dev/null)"
    sleep 0.2
  done
}

rss_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- CPU accounting
# cpu_mark NAME — remembers CPU ticks of our processes, nats-server and the machine;
# cpu_line NAME — prints the CPU each used since, as % of one core, and the machine's busy/steal.
declare -A CPU_AT
proc_ticks() {
  if [[ -n $1 && -r /proc/$1/stat ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi
}
nats_pid() { pgrep -x nats-server | head -n1 || true; }
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6, $9}' /proc/stat; }
cpu_mark() {
  CPU_AT[$1]="$(date +%s.%N) $(proc_ticks "$SVC_PID") $(proc_ticks "$SANDBOX_PID") $(proc_ticks "$(nats_pid)") $(machine_ticks)"
}
cpu_line() {
  local t0 s0 b0 n0 busy0 idle0 steal0 t1 s1 b1 n1 busy1 idle1 steal1
  read -r t0 s0 b0 n0 busy0 idle0 steal0 <<<"${CPU_AT[$1]}"
  read -r t1 s1 b1 n1 busy1 idle1 steal1 <<<"$(date +%s.%N) $(proc_ticks "$SVC_PID") $(proc_ticks "$SANDBOX_PID") $(proc_ticks "$(nats_pid)") $(machine_ticks)"
  awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" -v hz="$CLK_TCK" -v n="$(nproc)" \
    -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v na=$((n1 - n0)) \
    -v busy=$((busy1 - busy0)) -v idle=$((idle1 - idle0)) -v steal=$((steal1 - steal0)) 'BEGIN {
      all = busy + idle + steal; if (all == 0) all = 1
      printf "{\"seconds\":%.1f,\"service_pct\":%.0f,\"sandbox_pct\":%.0f,\"nats_pct\":%.0f,\"machine_busy_pct\":%.0f,\"steal_pct\":%.0f,\"cores\":%d}\n",
        t, 100 * s / hz / t, 100 * b / hz / t, 100 * na / hz / t, 100 * busy / all, 100 * steal / all, n
    }'
}

metric() { # metric PORT NAME — sum of a Prometheus counter of the running service ("?" if absent)
  curl -fsS --max-time 3 "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2; f = 1} END {if (f) printf "%d", s; else print "?"}'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
date_utc=$(date -u +%Y-%m-%dT%H:%MZ)
commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | grep -c . || true)
log "vk-connector benchmark$([[ $quick -eq 1 ]] && echo ' (--quick)'): load average $load_before, commit $commit"

# ---------------------------------------------------------------- 1 + 4: ingest and idle RSS
P1=vkbench${suffix}a
PREFIXES+=("$P1")
fresh_database
start_sandbox ingest
log "4/4 idle RSS: vk-connector started, measured ${settle}s after /ready"
start_bin "$VK_BIN" "$P1" "$VK_PORT" vk-connector-ingest serve
wait_ready vk-connector-ingest "$VK_PORT"
sleep "$settle"
rss_idle=$(rss_kib "$SVC_PID" VmRSS)
info "VmRSS ${rss_idle} KiB"

"$BENCH" wrk-lua --group-id "$GROUP_ID" --secret "$SECRET" --path "/vk/callback/$CALLBACK_ID" \
  --senders "$senders" --run-id "w$suffix" >"$WORK/callback.lua"
run_wrk() { # run_wrk PORT OUT — after one probe that must be answered "ok"
  timeout 15 "$BENCH" probe --group-id "$GROUP_ID" --secret "$SECRET" --run-id "p$2$suffix" \
    --url "http://127.0.0.1:$1/vk/callback/$CALLBACK_ID" || die "the callback route did not answer ok"
  timeout $((seconds + 30)) wrk -t2 -c64 -d"${seconds}s" --timeout 5s -s "$WORK/callback.lua" \
    "http://127.0.0.1:$1" >"$WORK/$2.txt" 2>&1 || die "wrk failed: $(tail -n 5 "$WORK/$2.txt")"
  grep '^{' "$WORK/$2.txt" | tail -n1 >"$WORK/$2.json"
  jq -e .requests "$WORK/$2.json" >/dev/null || die "no summary from wrk: $(cat "$WORK/$2.txt")"
}

log "1/4 ingest with the durable hand-off: wrk, 64 connections, ${seconds}s"
cpu_mark ingest
run_wrk "$VK_PORT" ingest
cpu_line ingest >"$WORK/ingest-cpu.json"
rss_peak=$(rss_kib "$SVC_PID" VmHWM)
rss_after=$(rss_kib "$SVC_PID" VmRSS)
published_1=$(metric "$VK_PORT" bus_published_total)
relayed_1=$(metric "$VK_PORT" relayed_to_chatwoot_total)
info "$(jq -c '{req_per_s, latency_ms, errors}' "$WORK/ingest.json")"
stop_service

log "1/4 the same requests without the publish (vk-callback-ceiling), ${seconds}s"
start_bin "$CEILING_BIN" "$P1" "$CEILING_PORT" vk-callback-ceiling
wait_ready vk-callback-ceiling "$CEILING_PORT"
cpu_mark ceiling
run_wrk "$CEILING_PORT" ceiling
cpu_line ceiling >"$WORK/ceiling-cpu.json"
info "$(jq -c '{req_per_s, latency_ms, errors}' "$WORK/ceiling.json")"
stop_service
stop_sandbox

# ---------------------------------------------------------------- 2: relay drain
P2=vkbench${suffix}b
PREFIXES+=("$P2")
fresh_database
start_sandbox drain
log "2/4 relay drain: publishing a backlog of $backlog messages from $senders senders (vk-connector stopped)"
timeout 60 "$BENCH" publish --group-id "$GROUP_ID" --secret "$SECRET" --nats-url "$NATS" \
  --prefix "$P2" --senders "$senders" --messages "$backlog" --run-id "d$suffix" >"$WORK/publish.json"
info "$(cat "$WORK/publish.json")"
drain_limit=$((backlog / 200 + 60)) # slower than ~200 messages/s is reported as not drained
((drain_limit <= 300)) || drain_limit=300
log "2/4 starting vk-connector; waiting for all $backlog at the sandbox Chatwoot (at most ${drain_limit}s)"
start_bin "$VK_BIN" "$P2" "$VK_PORT" vk-connector-drain serve
cpu_mark drain
timeout $((drain_limit + 30)) "$BENCH" drain --sandbox "$SANDBOX_URL" --ready-url "http://127.0.0.1:$VK_PORT/ready" \
  --expect "$backlog" --run-id "d$suffix" --timeout-secs "$drain_limit" >"$WORK/drain.json"
cpu_line drain >"$WORK/drain-cpu.json"
info "$(jq -c 'del(.per_second)' "$WORK/drain.json")"

# ---------------------------------------------------------------- 3: end-to-end latency
log "3/4 end-to-end latency: $rate callbacks/s from $senders senders for ${e2e_seconds}s (same vk-connector, conversations exist)"
cpu_mark e2e
timeout $((e2e_seconds + 2 * senders / rate + 150)) "$BENCH" e2e --group-id "$GROUP_ID" --secret "$SECRET" \
  --url "http://127.0.0.1:$VK_PORT/vk/callback/$CALLBACK_ID" --sandbox "$SANDBOX_URL" \
  --senders "$senders" --rate "$rate" --seconds "$e2e_seconds" --settle-secs 60 --run-id "e$suffix" >"$WORK/e2e.json"
cpu_line e2e >"$WORK/e2e-cpu.json"
info "$(jq -c '{achieved_rate, delivered, undelivered, relay_per_s, latency_ms, callback_ms}' "$WORK/e2e.json")"
rss_end=$(rss_kib "$SVC_PID" VmRSS)
stop_service
stop_sandbox
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pg=$(psql -X -At "$ADMIN_DB" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || echo '?')
nats_version=$(nats-server --version 2>/dev/null | awk '{print $NF}' || echo '?')
i=$WORK/ingest.json c=$WORK/ceiling.json d=$WORK/drain.json e=$WORK/e2e.json
verdict() { # verdict EXPR — jq boolean over the inputs → met / **missed**
  if jq -e -n "$1" >/dev/null 2>&1; then echo met; else echo '**missed**'; fi
}
cpu_cells() { jq -r '"\(.service_pct) % / \(.nats_pct) % / \(.sandbox_pct) % / \(.machine_busy_pct) % (steal \(.steal_pct) %)"' "$1"; }
v_ingest=$(verdict "$(jq -c . "$i") | .req_per_s >= 10000 and .latency_ms.p99 <= 25 and (.errors | add) == 0")
v_drain=$(verdict "$(jq -c . "$d") | .timed_out == false and .per_s >= 2000")
v_p50=$(verdict "$(jq -c . "$e") | .undelivered == 0 and .latency_ms.p50 <= 5")
v_p99=$(verdict "$(jq -c . "$e") | .undelivered == 0 and .latency_ms.p99 <= 50")
v_rss=$(verdict "$rss_idle * 1024 <= 15000000")
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k * 1024 / 1e6}'; }
# observations NAME CPUFILE — what the CPU figures say about a phase (no guessing: figures only)
observations() {
  jq -r --arg n "$1" '
    if .machine_busy_pct >= 90 then "- \($n): the machine was saturated (\(.machine_busy_pct) % of \(.cores) cores busy): CPU-bound here; the load generator, nats-server, Postgres and the sandbox share the cores with the service."
    else "- \($n): the machine was \(.machine_busy_pct) % busy (of \(.cores) cores): not CPU-bound as a whole." end,
    (if .steal_pct >= 5 then "  Steal time \(.steal_pct) %: the hypervisor took CPU from this VM; rerun on a quieter host." else empty end)' "$2"
}
mkdir -p "$(dirname "$out")"
{
  echo "# vk-connector benchmark"
  echo
  echo "Produced by \`bench/vk-connector.sh$([[ $quick -eq 1 ]] && echo ' --quick')\` on $date_utc, commit \`$commit\`$([[ $dirty -gt 0 ]] && echo " (work tree with $dirty uncommitted changes)")."
  [[ $quick -eq 1 ]] && echo && echo "**Smoke run (--quick): short phases and a small backlog; the figures are not the benchmark's.**"
  echo
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, $(uname -sr); Postgres $pg, NATS $nats_version"
  echo "(JetStream, file storage), all on this machine with the sandbox (fake VK + Chatwoot) and the"
  echo "load generators (wrk, \`vk-bench\`): everything shares the same cores over loopback."
  echo "Load average (1, 5, 15 min) before the run: $load_before; after: $load_after."
  echo "vk-connector: release build, \`LOG_LEVEL=warn\`, CONSUMER_CONCURRENCY=${CONSUMER_CONCURRENCY:-default},"
  echo "DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-default}, reconciliation sweep only at start."
  echo "CPU columns: vk-connector (or the ceiling) / nats-server / sandbox, as % of one core; then the"
  echo "whole machine's busy share (the rest of it: load generator, Postgres, anything else)."
  echo
  echo "| target | figure | |"
  echo "|---|---|---|"
  echo "| ingest ≥ 10,000 req/s, p99 ≤ 25 ms | $(jq -r '"\(.req_per_s|floor) req/s, p99 \(.latency_ms.p99) ms"' "$i") | $v_ingest |"
  echo "| relay drain ≥ 2,000 messages/s (baseline ~590) | $(jq -r '"\(.per_s) messages/s, \(.received) in \(.drain_s) s"' "$d") | $v_drain |"
  echo "| end-to-end p50 ≤ 5 ms | $(jq -r '"\(.latency_ms.p50) ms"' "$e") | $v_p50 |"
  echo "| end-to-end p99 ≤ 50 ms | $(jq -r '"\(.latency_ms.p99) ms"' "$e") | $v_p99 |"
  echo "| idle RSS ≤ 15 MB | $(mb "$rss_idle") ($(mib "$rss_idle")) | $v_rss |"
  echo
  echo "## 1. Callback ingest: wrk, 64 connections, ${seconds} s each"
  echo
  echo "\`POST /vk/callback/{VK_CALLBACK_ID}\`, a VK \`message_new\` of $(jq -r .body_bytes "$i") bytes (API 5.199 shape), a new"
  echo "\`event_id\` in every request (so JetStream stores every one; nothing is deduplicated), $senders senders."
  echo
  echo "| route | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | CPU svc / nats / sandbox / machine |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
  echo "$(jq -r '"| durable hand-off (vk-connector: \"ok\" after the JetStream ack) | \(.req_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.errors|add) |"' "$i") $(cpu_cells "$WORK/ingest-cpu.json") |"
  echo "$(jq -r '"| ceiling without the publish (vk-callback-ceiling) | \(.req_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.errors|add) |"' "$c") $(cpu_cells "$WORK/ceiling-cpu.json") |"
  echo
  echo "The ceiling binary (\`crates/vk-bench\`) does the route's work — callback id and secret checks,"
  echo "JSON parsing, normalization, envelope serialisation with its headers — behind the same"
  echo "service-kit HTTP stack, and answers \`ok\` without the publish. During the durable run the relay"
  echo "consumer ran as deployed, competing for the cores: published $published_1 events, relayed"
  echo "$relayed_1 of them to the sandbox Chatwoot before the service was stopped."
  echo
  echo "## 2. Relay drain: $backlog messages from $senders senders"
  echo
  echo "Published onto JetStream while vk-connector was stopped (in $(jq -r '"\(.seconds) s, \(.per_s) msg/s"' "$WORK/publish.json")): the envelopes the callback"
  echo "route publishes, each sender's messages in order; then vk-connector started on a fresh database"
  echo "and an empty sandbox Chatwoot (so the first message of every sender also creates its contact,"
  echo "contact inbox and conversation). Drain = from \`/ready\` to the last message's arrival."
  echo
  echo "| received | startup to /ready | first message | drain | **messages/s** | first→last | duplicates | out of order | CPU svc / nats / sandbox / machine |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  echo "$(jq -r '"| \(.received) of \(.expected)\(if .timed_out then " (time limit)" else "" end) | \(.startup_s) s | \(.first_after_ready_s) s | \(.drain_s) s | **\(.per_s)** | \(.per_s_first_to_last)/s | \(.duplicates) | \(.out_of_order) |"' "$d") $(cpu_cells "$WORK/drain-cpu.json") |"
  echo
  echo "Messages arriving at the sandbox per second after \`/ready\`:"
  echo
  echo "\`\`\`"
  jq -r '.per_second | map(tostring) | join(" ")' "$d"
  echo "\`\`\`"
  echo
  echo "## 3. End-to-end latency: $rate callbacks/s from $senders senders, ${e2e_seconds} s"
  echo
  echo "Open loop (a slow answer does not hold back the next request), on the vk-connector of phase 2"
  echo "(conversations exist; a warm-up of one message per sender ran first, not counted). Latency ="
  echo "the sandbox's arrival time of the Chatwoot \`POST …/messages\` minus the send time written into"
  echo "the message text, both from this machine's wall clock. relay/s = messages delivered per second"
  echo "from the first callback to the last arrival (below the offered rate: messages queued)."
  echo
  echo "| sent | achieved/s | delivered | not delivered in 60 s | relay/s | p50 ms | p90 ms | **p99 ms** | p99.9 ms | max ms | callback p50 / p99 ms | CPU svc / nats / sandbox / machine |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  echo "$(jq -r '"| \(.sent) | \(.achieved_rate) | \(.delivered) | \(.undelivered) | \(.relay_per_s) | \(.latency_ms.p50) | \(.latency_ms.p90) | **\(.latency_ms.p99)** | \(.latency_ms.p999) | \(.latency_ms.max) | \(.callback_ms.p50) / \(.callback_ms.p99) |"' "$e") $(cpu_cells "$WORK/e2e-cpu.json") |"
  echo
  echo "## 4. Memory"
  echo
  echo "| idle VmRSS ${settle} s after /ready | VmHWM after phase 1 | VmRSS after phase 1 | VmRSS after phase 3 |"
  echo "|---:|---:|---:|---:|"
  echo "| **$(mib "$rss_idle")** | $(mib "$rss_peak") | $(mib "$rss_after") | $(mib "$rss_end") |"
  echo
  echo "## Observations"
  echo
  observations "ingest (durable)" "$WORK/ingest-cpu.json"
  observations "ingest (ceiling)" "$WORK/ceiling-cpu.json"
  observations "drain" "$WORK/drain-cpu.json"
  observations "end-to-end" "$WORK/e2e-cpu.json"
  jq -r 'if .last_arrival_after_load_s > 1 then "  The relay delivered \(.relay_per_s) messages/s of the \(.achieved_rate)/s offered; the last message reached Chatwoot \(.last_arrival_after_load_s) s after the last callback: messages queued in JetStream, so the latency above is mostly time in that queue." else empty end' "$e"
  echo
  echo "Raw results:"
  echo
  echo "\`\`\`json"
  for f in ingest ingest-cpu ceiling ceiling-cpu publish drain drain-cpu e2e e2e-cpu; do
    jq -c --arg phase "$f" '{phase: $phase} + .' "$WORK/$f.json"
  done
  echo "\`\`\`"
} >"$out"
log "results written to ${out#"$REPO_ROOT"/}"
