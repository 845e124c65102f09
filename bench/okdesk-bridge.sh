#!/usr/bin/env bash
# Benchmark of okdesk-bridge on this machine (loopback only; every phase is bounded in time and
# in requests): the Okdesk webhook ingest with the durable hand-off and its ceiling without the
# database and the publish, the time from an Okdesk status webhook to the person's Telegram
# notification (through telegram-bot's helpdesk) at the sandbox, and the idle RSS.
# Writes bench/results/okdesk-bridge.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: bench/okdesk-bridge.sh [--quick] [--seconds N] [--rate N] [--e2e-seconds N]
                              [--people N] [--skip-build] [--out FILE]

Builds okdesk-bridge, telegram-bot and sandbox (release), then, against a fresh database
okdesk_bench and NATS streams prefixed "okbench…", with the sandbox (fake Okdesk API and
Telegram Bot API) on loopback:
  3. idle RSS (VmRSS) of okdesk-bridge, idle, a few seconds after /ready (measured first);
  1. ingest: wrk, 64 connections, N seconds (default 20), POST /okdesk/webhook/{token} with a
     `new_ticket_status` event of a new issue in every request (each one is announced:
     events.okdesk.issue.status_changed), answered 200 after JetStream acked it; then the
     same requests as `new_assignee` (answered 200 without the database or NATS): the ceiling;
  2. webhook → Telegram notification: telegram-bot (OKDESK_ENABLED=true, polling) and
     okdesk-bridge on the same NATS prefix; --people persons (default 200) register through
     the bot's dialog (/register, private person, name, phone: updates queued at the sandbox);
     then status webhooks at --rate events/s (default 200) for --e2e-seconds (default 30),
     each for a new issue of one of their contacts, open loop; latency = the sandbox seeing the
     bot's «Статус заявки №…» in the person's chat minus the webhook's send time.
The sandbox enforces no sending limits and the bot runs with none (TELEGRAM_*_RATE_* = 0).
The whole run takes about 2 minutes after the build (at most ~8).

Options:
  --quick        smoke run: 3 s per ingest run, 3 s of notification load, 50 people
  --skip-build   use the release binaries already in target/release
  --out FILE     where to write the report (default bench/results/okdesk-bridge.md)
Environment: TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), NATS_URL
(nats://127.0.0.1:4222), BENCH_SANDBOX_PORT (18390), BENCH_OKDESK_PORT (18383),
BENCH_TG_PORT (18384); CONSUMER_CONCURRENCY and DATABASE_MAX_CONNECTIONS are passed to both
services when set (else their defaults). Needs Postgres and NATS running (scripts/dev-deps.sh)
and python3 (the rate-limited sender); installs wrk and jq when missing.
USAGE
}

seconds=20
rate=200
e2e_seconds=30
people=200
settle=5
quick=0
build=1
out=$REPO_ROOT/bench/results/okdesk-bridge.md
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1 seconds=3 e2e_seconds=3 people=50 settle=2 ;;
    --seconds) seconds=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --e2e-seconds) e2e_seconds=${2:?}; shift ;;
    --people) people=${2:?}; shift ;;
    --skip-build) build=0 ;;
    --out) out=${2:?}; shift ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
((seconds >= 1 && seconds <= 120)) || die "--seconds must be 1..120"
((rate >= 1 && rate <= 5000)) || die "--rate must be 1..5000"
((e2e_seconds >= 1 && e2e_seconds <= 120)) || die "--e2e-seconds must be 1..120"
((people >= 1 && people <= 2000)) || die "--people must be 1..2000"

cd "$REPO_ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
ADMIN_DB=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${NATS_URL:-nats://127.0.0.1:4222}
SANDBOX_PORT=${BENCH_SANDBOX_PORT:-18390}
OK_PORT=${BENCH_OKDESK_PORT:-18383}
TG_PORT=${BENCH_TG_PORT:-18384}
SANDBOX_URL=http://127.0.0.1:$SANDBOX_PORT
DB=okdesk_bench
DB_URL=${ADMIN_DB%/*}/$DB
# The sandbox's defaults (crates/sandbox/src/telegram/mod.rs, src/main.rs), passed explicitly.
BOT_TOKEN=7000000001:AAF-sandbox-test-token
GROUP_ID=-1001000000001
OKDESK_TOKEN=okdesk-test-token
WEBHOOK_TOKEN=bench-okdesk-7e3a91c5d2f04b68
WEBHOOK_PATH=/okdesk/webhook/$WEBHOOK_TOKEN
FIRST_USER=600000001
LAST_USER=$((FIRST_USER + people - 1))
NOTICE_PREFIX='Статус заявки №'
WARMUP_ISSUE=5000000000 # warm-up webhooks: issues from here; measured ones from MAIN_ISSUE
MAIN_ISSUE=6000000000
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/okdesk-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

have wrk || apt_install wrk
have jq || apt_install jq
have python3 || die "python3 is needed (the rate-limited webhook sender)"

if [[ $build -eq 1 ]]; then
  log "building okdesk-bridge, telegram-bot and sandbox (release)"
  cargo build --release -p okdesk-bridge -p telegram-bot -p sandbox
fi
OK_BIN=$TARGET_DIR/release/okdesk-bridge
TG_BIN=$TARGET_DIR/release/telegram-bot
SANDBOX_BIN=$TARGET_DIR/release/sandbox
LUA=$REPO_ROOT/bench/okdesk-bridge.lua
for b in "$OK_BIN" "$TG_BIN" "$SANDBOX_BIN"; do
  [[ -x $b ]] || die "$b not found (run without --skip-build)"
done
[[ -r $LUA ]] || die "$LUA not found"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$SANDBOX_PORT" "$OK_PORT" "$TG_PORT"; do
  port_busy "$p" && die "127.0.0.1:$p is in use; set BENCH_SANDBOX_PORT / BENCH_OKDESK_PORT / BENCH_TG_PORT"
done

# ---------------------------------------------------------------- the webhook sender
# A rate-limited, open-loop sender of status webhooks (plain wrk has no -R): the k-th request is
# due at start + k/rate and goes out on one of --conns keep-alive connections; its send time is
# taken just before it is written. `report` joins the send times with the sandbox's watch.
cat >"$WORK/e2e.py" <<'PY'
import argparse, asyncio, json, re, sys, time

TEMPLATE = ('{"event":{"event_type":"new_ticket_status","new_status":{"code":"in_progress",'
            '"name":"В работе"},"old_status":{"code":"opened","name":"Открыта"}},'
            '"issue":{"id":"%d","title":"bench","contact_id":"%d"}}')

def now_us():
    return time.time_ns() // 1000

def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]

def ms(us):
    return None if us is None else round(us / 1000.0, 3)

async def send(a):
    contacts = [int(x) for x in open(a.contacts).read().split()]
    total = int(round(a.rate * a.seconds))
    queue = asyncio.Queue()
    recs = []
    due = [0] * total

    async def connect():
        return await asyncio.open_connection(a.host, a.port)

    async def worker():
        conn = await connect()
        while True:
            k = await queue.get()
            if k is None:
                break
            issue = a.first_issue + k
            contact = contacts[k % len(contacts)]
            body = (TEMPLATE % (issue, contact)).encode()
            req = ('POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n'
                   'Content-Length: %d\r\n\r\n' % (a.path, a.host, a.port, len(body))).encode() + body
            t0 = now_us()
            status = 0
            try:
                r, w = conn
                w.write(req)
                await w.drain()
                line = await asyncio.wait_for(r.readline(), 30)
                status = int(line.split()[1])
                length = 0
                while True:
                    h = await r.readline()
                    if h in (b'\r\n', b''):
                        break
                    name, _, value = h.decode('latin-1').partition(':')
                    if name.strip().lower() == 'content-length':
                        length = int(value.strip())
                if length:
                    await r.readexactly(length)
            except Exception:
                status = 0
                try:
                    conn[1].close()
                except Exception:
                    pass
                conn = await connect()
            recs.append([issue, contact, due[k], t0, now_us(), status])
        conn[1].close()

    workers = [asyncio.create_task(worker()) for _ in range(a.conns)]
    await asyncio.sleep(0.2)  # connections open
    start = time.monotonic()
    wall0 = now_us()
    for k in range(total):
        d = start + k / a.rate - time.monotonic()
        if d > 0:
            await asyncio.sleep(d)
        due[k] = wall0 + int(k * 1e6 / a.rate)
        queue.put_nowait(k)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    with open(a.out, 'w') as f:
        json.dump(recs, f)
    sent = [r[3] for r in recs]
    span = (max(sent) - min(sent)) / 1e6 if len(sent) > 1 else 0
    statuses = {}
    for r in recs:
        statuses[str(r[5])] = statuses.get(str(r[5]), 0) + 1
    answer = [r[4] - r[3] for r in recs]
    lag = [r[3] - r[2] for r in recs]
    print(json.dumps({
        'sent': len(recs), 'rate': a.rate, 'seconds': a.seconds,
        'achieved_rate': round((len(recs) - 1) / span, 1) if span > 0 else None,
        'statuses': statuses, 'non_200': len(recs) - statuses.get('200', 0),
        'webhook_ms': {'p50': ms(pct(answer, 50)), 'p99': ms(pct(answer, 99)), 'max': ms(max(answer))},
        'send_lag_ms': {'p99': ms(pct(lag, 99)), 'max': ms(max(lag))},
    }))

def report(a):
    recs = json.load(open(a.sent))
    seen = json.load(open(a.seen))
    user_of = {}
    for line in open(a.mapping):
        contact, user = line.split()
        user_of[int(contact)] = int(user)
    by_issue = {r[0]: r for r in recs}
    first = {}
    dup = wrong = foreign = 0
    for s in seen:
        m = re.search(r'№(\d+)', s['text'])
        issue = int(m.group(1)) if m else None
        if issue not in by_issue:
            foreign += 1
            continue
        if issue in first:
            dup += 1
            continue
        first[issue] = s
        if s['chat_id'] != user_of.get(by_issue[issue][1]):
            wrong += 1
    lat = [first[i]['seen_at_us'] - by_issue[i][3] for i in first]
    from_due = [first[i]['seen_at_us'] - by_issue[i][2] for i in first]
    ok = [r for r in recs if r[5] == 200]
    last_sent = max(r[3] for r in recs)
    first_sent = min(r[3] for r in recs)
    last_seen = max((s['seen_at_us'] for s in first.values()), default=None)
    span = (last_seen - first_sent) / 1e6 if last_seen else None
    print(json.dumps({
        'sent': len(recs), 'accepted': len(ok), 'delivered': len(first),
        'undelivered': len(ok) - len([i for i in first if by_issue[i][5] == 200]),
        'duplicates': dup, 'wrong_chat': wrong, 'other_notices': foreign,
        'notices_per_s': round(len(first) / span, 1) if span else None,
        'last_after_last_webhook_s': round((last_seen - last_sent) / 1e6, 3) if last_seen else None,
        'latency_ms': {'p50': ms(pct(lat, 50)), 'p90': ms(pct(lat, 90)), 'p99': ms(pct(lat, 99)),
                       'p999': ms(pct(lat, 99.9)), 'max': ms(max(lat)) if lat else None,
                       'min': ms(min(lat)) if lat else None},
        'from_due_ms': {'p50': ms(pct(from_due, 50)), 'p99': ms(pct(from_due, 99))},
    }))

p = argparse.ArgumentParser()
sub = p.add_subparsers(dest='cmd', required=True)
s = sub.add_parser('send')
s.add_argument('--host', default='127.0.0.1')
s.add_argument('--port', type=int, required=True)
s.add_argument('--path', required=True)
s.add_argument('--rate', type=float, required=True)
s.add_argument('--seconds', type=float, required=True)
s.add_argument('--conns', type=int, default=32)
s.add_argument('--contacts', required=True)
s.add_argument('--first-issue', type=int, required=True)
s.add_argument('--out', required=True)
r = sub.add_parser('report')
r.add_argument('--sent', required=True)
r.add_argument('--seen', required=True)
r.add_argument('--mapping', required=True)
a = p.parse_args()
if a.cmd == 'send':
    asyncio.run(send(a))
else:
    report(a)
PY

# ---------------------------------------------------------------- processes
OK_PID="" TG_PID="" SANDBOX_PID="" WATCH_PID=""
# stop PID — SIGTERM, up to 10 s, then SIGKILL; only processes this script started.
stop() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  warn "pid $pid did not stop within 10 s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
stop_bridge() { stop "$OK_PID"; OK_PID=""; }
stop_bot() { stop "$TG_PID"; TG_PID=""; }
stop_sandbox() { stop "$SANDBOX_PID"; SANDBOX_PID=""; }

# nats_delete_streams PREFIX — deletes <PREFIX>_EVENTS and <PREFIX>_COMMANDS (the names
# service-kit's Bus gives them) over the plain NATS protocol; waits up to 5 s for the answers.
nats_delete_streams() {
  local name=${1^^} hostport fd line n=0
  hostport=${NATS#*://}
  hostport=${hostport##*@}
  hostport=${hostport%%,*}
  hostport=${hostport%%/*}
  exec {fd}<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
  printf 'CONNECT {"verbose":false,"pedantic":false,"name":"okdesk-bench-cleanup"}\r\nSUB _INBOX.okbench.%s 1\r\n' "$name" >&"$fd"
  # shellcheck disable=SC2016 # $JS is NATS's, not the shell's
  printf 'PUB $JS.API.STREAM.DELETE.%s_%s _INBOX.okbench.%s 0\r\n\r\n' "$name" EVENTS "$name" "$name" COMMANDS "$name" >&"$fd"
  while ((n < 2)) && IFS= read -r -t 5 line <&"$fd"; do
    [[ $line == MSG* ]] && n=$((n + 1))
  done
  exec {fd}>&-
}

PREFIXES=()
cleanup() {
  local rc=$? p
  stop "$WATCH_PID"
  stop_bot
  stop_bridge
  stop_sandbox
  if [[ $rc -ne 0 ]]; then
    for p in "$WORK"/*.log; do
      [[ -s $p ]] && { printf '\n--- last lines of %s ---\n' "$(basename "$p")" >&2; tail -n 15 "$p" >&2; }
    done
  fi
  for p in "${PREFIXES[@]}"; do
    nats_delete_streams "$p" >/dev/null 2>&1 || true
  done
  psql -X -q "$ADMIN_DB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fresh_database() {
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_DB" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
}

# start_sandbox NAME — a fresh sandbox: no Okdesk contacts or issues, no Telegram chats, no
# Okdesk webhook URL (the benchmark posts the webhooks itself).
start_sandbox() {
  stop_sandbox
  env -i PATH="$PATH" RUST_LOG=warn "$SANDBOX_BIN" --listen "127.0.0.1:$SANDBOX_PORT" \
    --telegram-bot-token "$BOT_TOKEN" --telegram-group-id="$GROUP_ID" \
    --okdesk-api-token "$OKDESK_TOKEN" >"$WORK/sandbox-$1.log" 2>&1 &
  SANDBOX_PID=$!
  wait_until 30 "the sandbox" curl -fsS -o /dev/null "$SANDBOX_URL/_sandbox/okdesk/contacts" ||
    die "the sandbox did not start"
}

# tuning — CONSUMER_CONCURRENCY / DATABASE_MAX_CONNECTIONS when set.
tuning() {
  TUNING=()
  [[ -n ${CONSUMER_CONCURRENCY:-} ]] && TUNING+=(CONSUMER_CONCURRENCY="$CONSUMER_CONCURRENCY")
  [[ -n ${DATABASE_MAX_CONNECTIONS:-} ]] && TUNING+=(DATABASE_MAX_CONNECTIONS="$DATABASE_MAX_CONNECTIONS")
  return 0
}

# start_bridge PREFIX POLL_SECS LOG — starts okdesk-bridge (serve); does not wait.
start_bridge() {
  tuning
  (cd "$WORK" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$OK_PORT" DATABASE_URL="$DB_URL" \
    NATS_URL="$NATS" NATS_SUBJECT_PREFIX="$1" LOG_FORMAT=json LOG_LEVEL=warn \
    OKDESK_API_URL="$SANDBOX_URL/okdesk/api/v1" OKDESK_API_TOKEN="$OKDESK_TOKEN" \
    OKDESK_WEBHOOK_TOKEN="$WEBHOOK_TOKEN" OKDESK_POLL_INTERVAL_SECS="$2" "${TUNING[@]}" \
    "$OK_BIN" >"$WORK/$3.log" 2>&1) &
  OK_PID=$!
}

# start_bot PREFIX LOG — starts telegram-bot (polling, helpdesk on, no sending limits).
start_bot() {
  tuning
  (cd "$WORK" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$TG_PORT" DATABASE_URL="$DB_URL" \
    NATS_URL="$NATS" NATS_SUBJECT_PREFIX="$1" LOG_FORMAT=json LOG_LEVEL=warn \
    BOT_TOKEN="$BOT_TOKEN" BOT_GROUP_ID="$GROUP_ID" TELEGRAM_API_URL="$SANDBOX_URL/telegram" \
    TELEGRAM_RATE_PER_SEC=0 TELEGRAM_CHAT_RATE_PER_SEC=0 TELEGRAM_GROUP_RATE_PER_MIN=0 \
    WEBHOOK_ENABLED=false OKDESK_ENABLED=true "${TUNING[@]}" \
    "$TG_BIN" >"$WORK/$2.log" 2>&1) &
  TG_PID=$!
}

# wait_ready PID PORT LOG — polls /ready for up to 60 s; fails at once when the process exited.
wait_ready() {
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$2/ready" 2>/dev/null; do
    kill -0 "$1" 2>/dev/null || die "$3 exited: $(tail -n 5 "$WORK/$3.log" 2>/dev/null)"
    ((SECONDS < deadline)) || die "$3 did not get ready in 60 s: $(tail -n 5 "$WORK/$3.log" 2>/dev/null)"
    sleep 0.1
  done
}

rss_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- CPU accounting
# cpu_mark NAME — remembers CPU ticks of okdesk-bridge, telegram-bot, the sandbox, nats-server,
# Postgres and the machine; cpu_line NAME [LOADGEN_SECONDS] — prints the CPU each used since,
# as % of one core (the load generator's from the CPU seconds given), what every other process
# used (other_pct: the machine's busy time minus all of those), and the machine's busy/steal.
declare -A CPU_AT
proc_ticks() {
  if [[ -n $1 && -r /proc/$1/stat ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi
}
nats_pid() { pgrep -x nats-server | head -n1 || true; }
# Postgres: the postmaster and its backends alive now (a backend that ends within a phase makes
# the figure low, never high: it is clamped at 0).
pg_ticks() {
  local p s=0 t
  for p in $(pgrep -x postgres || true); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) && s=$((s + t))
  done
  echo "$s"
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6, $9}' /proc/stat; }
cpu_now() { echo "$(date +%s.%N) $(proc_ticks "$OK_PID") $(proc_ticks "$TG_PID") $(proc_ticks "$SANDBOX_PID") $(proc_ticks "$(nats_pid)") $(pg_ticks) $(machine_ticks)"; }
cpu_mark() { CPU_AT[$1]=$(cpu_now); }
cpu_line() {
  local t0 o0 g0 s0 n0 p0 busy0 idle0 steal0 t1 o1 g1 s1 n1 p1 busy1 idle1 steal1
  read -r t0 o0 g0 s0 n0 p0 busy0 idle0 steal0 <<<"${CPU_AT[$1]}"
  read -r t1 o1 g1 s1 n1 p1 busy1 idle1 steal1 <<<"$(cpu_now)"
  awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" -v hz="$CLK_TCK" -v n="$(nproc)" \
    -v o=$((o1 - o0)) -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v na=$((n1 - n0)) -v pg=$((p1 - p0)) \
    -v w="${2:-0}" -v busy=$((busy1 - busy0)) -v idle=$((idle1 - idle0)) -v steal=$((steal1 - steal0)) 'BEGIN {
      all = busy + idle + steal; if (all == 0) all = 1
      if (pg < 0) pg = 0
      ok = 100 * o / hz / t; tg = 100 * g / hz / t; sb = 100 * s / hz / t; nt = 100 * na / hz / t
      pgp = 100 * pg / hz / t; gen = 100 * w / t; mach = 100 * busy / hz / t
      other = mach - ok - tg - sb - nt - pgp - gen
      if (other < 0) other = 0
      printf "{\"seconds\":%.1f,\"bridge_pct\":%.0f,\"bot_pct\":%.0f,\"sandbox_pct\":%.0f,\"nats_pct\":%.0f,\"postgres_pct\":%.0f,\"loadgen_pct\":%.0f,\"other_pct\":%.0f,\"machine_busy_pct\":%.0f,\"steal_pct\":%.0f,\"cores\":%d}\n",
        t, ok, tg, sb, nt, pgp, gen, other, 100 * busy / all, 100 * steal / all, n
    }'
}

# metric PORT NAME [LABEL] — sum of a Prometheus counter of a running service over the series
# whose labels contain LABEL (e.g. outcome="status announced"); "?" if absent.
metric() {
  curl -fsS --max-time 3 "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v m="$2" -v l="${3:-}" '($1 == m || index($1, m "{") == 1) && index($0, l) > 0 {s += $NF; f = 1}
      END {if (f) printf "%d", s; else print "?"}'
}

# probe MODE ISSUE — one webhook (status | ignored); must be 200.
probe() {
  local event=new_ticket_status code
  [[ $1 == ignored ]] && event=new_assignee
  code=$(curl -sS -o "$WORK/probe.out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data-binary "{\"event\":{\"event_type\":\"$event\",\"new_status\":{\"code\":\"in_progress\",\"name\":\"В работе\"},\"old_status\":{\"code\":\"opened\",\"name\":\"Открыта\"}},\"issue\":{\"id\":\"$2\",\"title\":\"t\",\"contact_id\":\"1\"}}" \
    "http://127.0.0.1:$OK_PORT$WEBHOOK_PATH") || die "the webhook route did not answer"
  [[ $code == 200 ]] || die "the webhook route answered $code $(head -c 200 "$WORK/probe.out") to a $1 webhook"
}

# run_wrk MODE OUT — wrk, 2 threads, 64 connections, $seconds s, after one probe; wrk's CPU
# seconds (user + system) go to OUT.wrkcpu.
run_wrk() {
  local TIMEFORMAT='%3U %3S'
  probe "$1" "$([[ $1 == ignored ]] && echo 2 || echo 1)"
  { time timeout $((seconds + 30)) wrk -t2 -c64 -d"${seconds}s" --timeout 5s -s "$LUA" \
    "http://127.0.0.1:$OK_PORT" -- "$WEBHOOK_PATH" 1000 1 "$1" \
    >"$WORK/$2.txt" 2>&1; } 2>"$WORK/$2.time" || die "wrk failed: $(tail -n 5 "$WORK/$2.txt")"
  awk 'NF == 2 {print $1 + $2}' "$WORK/$2.time" | tail -n1 >"$WORK/$2.wrkcpu"
  grep '^{' "$WORK/$2.txt" | tail -n1 >"$WORK/$2.json"
  jq -e .requests "$WORK/$2.json" >/dev/null || die "no summary from wrk: $(cat "$WORK/$2.txt")"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
date_utc=$(date -u +%Y-%m-%dT%H:%MZ)
commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | grep -c . || true)
log "okdesk-bridge benchmark$([[ $quick -eq 1 ]] && echo ' (--quick)'): load average $load_before, commit $commit"

# ---------------------------------------------------------------- 3: idle RSS
P0=okbench${suffix}i
PREFIXES+=("$P0")
fresh_database
start_sandbox idle
log "3/3 idle RSS: okdesk-bridge as deployed (poll every 180 s), measured ${settle}s after /ready"
start_bridge "$P0" 180 okdesk-bridge-idle
wait_ready "$OK_PID" "$OK_PORT" okdesk-bridge-idle
sleep "$settle"
rss_idle=$(rss_kib "$OK_PID" VmRSS)
rss_idle_hwm=$(rss_kib "$OK_PID" VmHWM)
rss_idle_anon=$(rss_kib "$OK_PID" RssAnon)
rss_idle_file=$(rss_kib "$OK_PID" RssFile)
bin_kib=$(($(stat -c %s "$OK_BIN") / 1024))
threads_idle=$(awk '$1 == "Threads:" {print $2}' "/proc/$OK_PID/status")
info "VmRSS ${rss_idle} KiB (RssAnon $rss_idle_anon, RssFile $rss_idle_file, VmHWM $rss_idle_hwm KiB, $threads_idle threads)"
stop_bridge

# ---------------------------------------------------------------- 1: webhook ingest
P1=okbench${suffix}a
PREFIXES+=("$P1")
log "1/3 ingest with the durable hand-off: wrk, 64 connections, ${seconds}s"
start_bridge "$P1" 0 okdesk-bridge-ingest
wait_ready "$OK_PID" "$OK_PORT" okdesk-bridge-ingest
rss_before=$(rss_kib "$OK_PID" VmRSS)
cpu_mark ingest
run_wrk status ingest
cpu_line ingest "$(cat "$WORK/ingest.wrkcpu")" >"$WORK/ingest-cpu.json"
rss_peak=$(rss_kib "$OK_PID" VmHWM)
rss_after=$(rss_kib "$OK_PID" VmRSS)
announced_1=$(metric "$OK_PORT" okdesk_webhooks_total 'outcome="status announced"')
published_1=$(metric "$OK_PORT" bus_published_total)
issues_1=$(psql -X -At "$DB_URL" -c 'SELECT count(*) FROM okdesk.issues' 2>/dev/null || echo '?')
info "$(jq -c '{req_per_s, latency_ms, errors}' "$WORK/ingest.json")"
info "announced $announced_1, published $published_1, issues recorded $issues_1"
stop_bridge

# The same with a larger pool (a diagnostic: the transaction holds its connection across the
# JetStream ack, so the pool may bound the route); skipped when DATABASE_MAX_CONNECTIONS is set.
POOL=32
if [[ -z ${DATABASE_MAX_CONNECTIONS:-} ]]; then
  P1p=okbench${suffix}p
  PREFIXES+=("$P1p")
  log "1/3 durable hand-off with DATABASE_MAX_CONNECTIONS=$POOL (default 10), fresh streams, ${seconds}s"
  DATABASE_MAX_CONNECTIONS=$POOL start_bridge "$P1p" 0 okdesk-bridge-pool
  wait_ready "$OK_PID" "$OK_PORT" okdesk-bridge-pool
  cpu_mark pool
  run_wrk status pool
  cpu_line pool "$(cat "$WORK/pool.wrkcpu")" >"$WORK/pool-cpu.json"
  info "$(jq -c '{req_per_s, latency_ms, errors}' "$WORK/pool.json")"
  stop_bridge
fi

P1c=okbench${suffix}c
PREFIXES+=("$P1c")
log "1/3 the same requests as new_assignee (no database, no publish), ${seconds}s"
start_bridge "$P1c" 0 okdesk-bridge-ceiling
wait_ready "$OK_PID" "$OK_PORT" okdesk-bridge-ceiling
cpu_mark ceiling
run_wrk ignored ceiling
cpu_line ceiling "$(cat "$WORK/ceiling.wrkcpu")" >"$WORK/ceiling-cpu.json"
ignored_c=$(metric "$OK_PORT" okdesk_webhooks_total 'outcome="event type not relayed"')
published_c=$(metric "$OK_PORT" bus_published_total)
[[ $published_c == "?" ]] && published_c=0 # no bus_published_total series: nothing published
info "$(jq -c '{req_per_s, latency_ms, errors}' "$WORK/ceiling.json")"
info "not relayed $ignored_c, published $published_c"
stop_bridge
stop_sandbox

# ---------------------------------------------------------------- 2: webhook → notification
P2=okbench${suffix}b
PREFIXES+=("$P2")
fresh_database
start_sandbox e2e
log "2/3 webhook → Telegram notification: okdesk-bridge and telegram-bot (OKDESK_ENABLED) on one prefix"
start_bridge "$P2" 0 okdesk-bridge-e2e
wait_ready "$OK_PID" "$OK_PORT" okdesk-bridge-e2e
start_bot "$P2" telegram-bot-e2e
wait_ready "$TG_PID" "$TG_PORT" telegram-bot-e2e
log "2/3 registering $people people through the bot's dialog (/register, private person, name, phone)"
awk -v n="$people" -v u="$FIRST_USER" 'BEGIN {
  split("/register|👤 Частное лицо|NAME|PHONE", step, "|")
  printf "["
  for (s = 1; s <= 4; s++) for (i = 0; i < n; i++) {
    user = u + i; text = step[s]
    if (text == "NAME") text = sprintf("Бенч Клиент %d", i + 1)
    if (text == "PHONE") text = sprintf("+7 900 %03d-%02d-%02d", 100 + int(i / 10000), int(i / 100) % 100, i % 100)
    if (s > 1 || i > 0) printf ","
    printf "{\"message\":{\"date\":1764000000,\"chat\":{\"id\":%d,\"type\":\"private\",\"first_name\":\"C\"},\"from\":{\"id\":%d,\"is_bot\":false,\"first_name\":\"C\",\"language_code\":\"ru\"},\"text\":\"%s\"}}", user, user, text
  }
  printf "]"
}' >"$WORK/register.json"
reg_t0=$EPOCHREALTIME
curl -fsS --max-time 60 -H 'Content-Type: application/json' --data-binary "@$WORK/register.json" \
  "$SANDBOX_URL/_sandbox/telegram/updates/bulk" >"$WORK/register-push.json" || die "the bulk push failed"
registered=0
deadline=$((SECONDS + 180))
while ((SECONDS < deadline)); do
  kill -0 "$OK_PID" 2>/dev/null || die "okdesk-bridge exited during the registrations"
  kill -0 "$TG_PID" 2>/dev/null || die "telegram-bot exited during the registrations"
  registered=$(psql -X -At "$DB_URL" -c 'SELECT count(*) FROM telegram.helpdesk_people WHERE contact_id IS NOT NULL' 2>/dev/null || echo 0)
  ((registered >= people)) && break
  sleep 0.5
done
reg_s=$(awk -v a="$reg_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
((registered >= people)) ||
  die "only $registered of $people people registered in 180 s (dialog steps: $(psql -X -At "$DB_URL" -c 'SELECT step, count(*) FROM telegram.helpdesk_dialogs GROUP BY 1' 2>/dev/null | tr '\n' ' '))"
psql -X -At -F ' ' "$DB_URL" -c 'SELECT contact_id, user_id FROM telegram.helpdesk_people ORDER BY user_id' >"$WORK/mapping.txt"
awk '{print $1}' "$WORK/mapping.txt" >"$WORK/contacts.txt"
contacts_distinct=$(sort -u "$WORK/contacts.txt" | grep -c .)
okdesk_contacts=$(curl -fsS --max-time 10 "$SANDBOX_URL/_sandbox/okdesk/contacts" | jq length)
info "$registered registered in ${reg_s}s ($contacts_distinct distinct contacts; $okdesk_contacts contacts in the Okdesk fake)"
sleep 1 # the «registered» answers go out after the contact is stored

# watch COUNT SECONDS OUT — the sandbox's watch of the people's chats, in the background.
watch_notices() {
  curl -fsS --max-time $(($2 + 30)) -G "$SANDBOX_URL/_sandbox/telegram/watch" \
    --data-urlencode "from_chat=$FIRST_USER" --data-urlencode "to_chat=$LAST_USER" \
    --data-urlencode "count=$1" --data-urlencode "seconds=$2" --data-urlencode "prefix=$NOTICE_PREFIX" \
    >"$3" 2>"$3.err" &
  WATCH_PID=$!
  sleep 0.5 # the watch has taken its snapshot
}
send_webhooks() { # send_webhooks RATE SECONDS FIRST_ISSUE OUT
  timeout "$(awk -v s="$2" 'BEGIN {printf "%d", s + 61}')" python3 "$WORK/e2e.py" send --port "$OK_PORT" --path "$WEBHOOK_PATH" --rate "$1" \
    --seconds "$2" --conns 32 --contacts "$WORK/contacts.txt" --first-issue "$3" --out "$4.sent.json" >"$4.json" ||
    die "the webhook sender failed"
}

warm_n=$people
log "2/3 warm-up: $warm_n webhooks (one per person) at $rate/s, not counted"
watch_notices "$warm_n" 60 "$WORK/warm-seen.json"
send_webhooks "$rate" "$(awk -v n="$warm_n" -v r="$rate" 'BEGIN {printf "%.3f", n / r}')" "$WARMUP_ISSUE" "$WORK/warm"
wait "$WATCH_PID" || die "the warm-up watch failed: $(cat "$WORK/warm-seen.json.err")"
WATCH_PID=""
info "warm-up: $(jq -c '{sent, non_200}' "$WORK/warm.json"), $(jq length "$WORK/warm-seen.json") notifications seen"

total=$((rate * e2e_seconds))
watch_limit=$((e2e_seconds + 90))
log "2/3 $rate status webhooks/s for ${e2e_seconds}s ($total), open loop; waiting for the notifications (at most ${watch_limit}s)"
watch_notices "$total" "$watch_limit" "$WORK/seen.json"
cpu_mark e2e
TIMEFORMAT='%3U %3S'
{ time send_webhooks "$rate" "$e2e_seconds" "$MAIN_ISSUE" "$WORK/send"; } 2>"$WORK/send.time"
wait "$WATCH_PID" || die "the watch failed: $(cat "$WORK/seen.json.err")"
WATCH_PID=""
cpu_line e2e "$(awk 'NF == 2 {print $1 + $2}' "$WORK/send.time" | tail -n1)" >"$WORK/e2e-cpu.json"
python3 "$WORK/e2e.py" report --sent "$WORK/send.sent.json" --seen "$WORK/seen.json" \
  --mapping "$WORK/mapping.txt" >"$WORK/e2e-report.json" || die "the report failed"
jq -c -s '.[0] + {notices: .[1]}' "$WORK/send.json" "$WORK/e2e-report.json" >"$WORK/e2e.json"
notified=$(metric "$TG_PORT" telegram_helpdesk_notifications_total 'outcome="sent"')
announced_2=$(metric "$OK_PORT" okdesk_webhooks_total 'outcome="status announced"')
rss_e2e=$(rss_kib "$OK_PID" VmRSS)
rss_e2e_hwm=$(rss_kib "$OK_PID" VmHWM)
info "$(jq -c . "$WORK/e2e.json")"
info "bridge announced $announced_2, bot sent $notified notifications (registrations included)"
stop_bot
stop_bridge
stop_sandbox
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pg=$(psql -X -At "$ADMIN_DB" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || echo '?')
nats_version=$(nats-server --version 2>/dev/null | awk '{print $NF}' || echo '?')
i=$WORK/ingest.json c=$WORK/ceiling.json e=$WORK/e2e.json
verdict() { # verdict EXPR — jq boolean over the inputs → met / **missed**
  if jq -e -n "$1" >/dev/null 2>&1; then echo met; else echo '**missed**'; fi
}
cpu_cells() { jq -r '"\(.bridge_pct) / \(.bot_pct) / \(.nats_pct) / \(.sandbox_pct) / \(.postgres_pct) / \(.loadgen_pct) / \(.other_pct) % · \(.machine_busy_pct) % (steal \(.steal_pct) %)"' "$1"; }
v_ingest=$(verdict "$(jq -c . "$i") | .req_per_s >= 10000 and .latency_ms.p99 <= 25 and (.errors | add) == 0")
v_e2e=$(verdict "$(jq -c . "$e") | .non_200 == 0 and .notices.undelivered == 0 and .notices.duplicates == 0 and .notices.wrong_chat == 0")
v_rss=$(verdict "$rss_idle * 1024 <= 15000000")
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k * 1024 / 1e6}'; }
# observations NAME CPUFILE — what the CPU figures say about a phase (figures only)
observations() {
  jq -r --arg n "$1" '
    if .machine_busy_pct >= 90 then "- \($n): the machine was saturated (\(.machine_busy_pct) % of \(.cores) cores busy): CPU-bound here; the load generator, nats-server, Postgres and the sandbox share the cores with the service."
    else "- \($n): the machine was \(.machine_busy_pct) % busy (of \(.cores) cores): not CPU-bound as a whole." end,
    (if .steal_pct >= 5 then "  Steal time \(.steal_pct) %: the hypervisor took CPU from this VM; rerun on a quieter host." else empty end),
    (if .other_pct >= 20 then "  Other processes (not ours, nats-server, Postgres or the load generator) used \(.other_pct) % of a core meanwhile: the machine was shared, so the figures may be lower than on a quiet host." else empty end)' "$2"
}
mkdir -p "$(dirname "$out")"
{
  echo "# okdesk-bridge benchmark"
  echo
  echo "Produced by \`bench/okdesk-bridge.sh$([[ $quick -eq 1 ]] && echo ' --quick')\` on $date_utc, commit \`$commit\`$([[ $dirty -gt 0 ]] && echo " (work tree with $dirty uncommitted changes)")."
  [[ $quick -eq 1 ]] && echo && echo "**Smoke run (--quick): short phases and few people; the figures are not the benchmark's.**"
  echo
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, $(uname -sr); Postgres $pg, NATS $nats_version"
  echo "(JetStream, file storage), all on this machine with the sandbox (fake Okdesk API and Telegram"
  echo "Bot API) and the load generators (wrk; a Python asyncio sender for the fixed rate):"
  echo "everything shares the same cores over loopback."
  echo "Load average (1, 5, 15 min) before the run: $load_before; after: $load_after."
  echo "okdesk-bridge: release build, \`LOG_LEVEL=warn\`, \`LOG_FORMAT=json\`, \`OKDESK_POLL_INTERVAL_SECS=0\`"
  echo "in phases 1 and 2 (the deployed 180 for the idle RSS), CONSUMER_CONCURRENCY=${CONSUMER_CONCURRENCY:-default},"
  echo "DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-default}, \`OKDESK_API_URL\` = the sandbox."
  echo "telegram-bot (phase 2): release build, polling, \`OKDESK_ENABLED=true\`, no sending limits"
  echo "(\`TELEGRAM_RATE_PER_SEC=0 TELEGRAM_CHAT_RATE_PER_SEC=0 TELEGRAM_GROUP_RATE_PER_MIN=0\`; the sandbox"
  echo "enforces none either), same database and NATS prefix as the bridge."
  echo "CPU columns: okdesk-bridge / telegram-bot / nats-server / sandbox / Postgres / load generator /"
  echo "every other process on the machine (busy time minus the others), as % of one core ($(nproc) cores ="
  echo "$(($(nproc) * 100)) %); then the whole machine's busy share and the steal time."
  echo
  echo "| target | figure | |"
  echo "|---|---|---|"
  echo "| webhook ingest ≥ 10,000 req/s, p99 ≤ 25 ms (64 connections) | $(jq -r '"\(.req_per_s|floor) req/s, p99 \(.latency_ms.p99) ms, \(.errors.status) non-2xx"' "$i") | $v_ingest |"
  echo "| status webhook → Telegram notification at $rate events/s, p50 / p99 (no target figure) | $(jq -r '"p50 \(.notices.latency_ms.p50) ms, p99 \(.notices.latency_ms.p99) ms; \(.notices.delivered) of \(.sent) delivered"' "$e") | $([[ $v_e2e == met ]] && echo 'all delivered, once, to the right person' || echo '**not all delivered once**') |"
  echo "| idle RSS ≤ 15 MB | $(mb "$rss_idle") ($(mib "$rss_idle")) | $v_rss |"
  echo
  echo "## 1. Webhook ingest: wrk, 64 connections, ${seconds} s each"
  echo
  echo "\`POST /okdesk/webhook/{OKDESK_WEBHOOK_TOKEN}\`, a \`new_ticket_status\` event (\`opened\` → \`in_progress\`)"
  echo "of $(jq -r .body_bytes "$i") bytes for a new issue id in every request, 1,000 contacts (\`bench/okdesk-bridge.lua\`):"
  echo "each is the first sighting of its issue with a status other than \`opened\`, so the bridge"
  echo "records the issue (\`okdesk.issues\`, its row locked while the change is decided), publishes"
  echo "\`events.okdesk.issue.status_changed\` (key \`okdesk:issue:<id>:status:1\`, nothing deduplicated),"
  echo "records the announced status and commits, and answers 200 after the JetStream ack."
  echo "non-2xx = wrk's status errors."
  echo
  echo "| route | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | non-2xx | other errors | CPU bridge / bot / nats / sandbox / pg / wrk / other · machine |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  echo "$(jq -r '"| durable hand-off (200 after the JetStream ack) | \(.req_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.errors.status) | \(.errors.connect + .errors.read + .errors.write + .errors.timeout) |"' "$i") $(cpu_cells "$WORK/ingest-cpu.json") |"
  [[ -s $WORK/pool.json ]] &&
    echo "$(jq -r --arg pool "$POOL" '"| durable hand-off, `DATABASE_MAX_CONNECTIONS=\($pool)` (default 10) | \(.req_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.errors.status) | \(.errors.connect + .errors.read + .errors.write + .errors.timeout) |"' "$WORK/pool.json") $(cpu_cells "$WORK/pool-cpu.json") |"
  echo "$(jq -r '"| ceiling: the same webhook as `new_assignee` (no database, no publish) | \(.req_per_s|floor) | \(.latency_ms.p50) | \(.latency_ms.p90) | \(.latency_ms.p99) | \(.latency_ms.p999) | \(.latency_ms.max) | \(.errors.status) | \(.errors.connect + .errors.read + .errors.write + .errors.timeout) |"' "$c") $(cpu_cells "$WORK/ceiling-cpu.json") |"
  echo
  echo "During the durable run the bridge counted $announced_1 status changes announced (published"
  echo "$published_1 events; $issues_1 issues recorded, the probe's included). The ceiling is the"
  echo "same binary and route on fresh streams: the token check, the body read and the JSON parse"
  echo "run, and \`new_assignee\` is answered 200 as \"event type not relayed\" without touching the"
  echo "database or NATS ($ignored_c such answers counted, $published_c published)."
  [[ -s $WORK/pool.json ]] && echo "The run with \`DATABASE_MAX_CONNECTIONS=$POOL\` is the durable one on fresh streams with a larger pool: the" &&
    echo "transaction holds its connection across the JetStream ack, so the default pool of 10 may bound the route."
  echo "The runs went one after the other: durable$([[ -s $WORK/pool.json ]] && echo ", larger pool"), ceiling."
  echo
  echo "## 2. Status webhook → the person's Telegram notification: $rate events/s, ${e2e_seconds} s"
  echo
  echo "$people people registered first through telegram-bot's dialog, as a person would: \`/register\`,"
  echo "«👤 Частное лицо», a name, a phone, queued at the sandbox as private-chat updates (one bulk"
  echo "request); the bot published \`cmd.okdesk.contact.register\`, the bridge created each contact in"
  echo "the Okdesk fake and answered \`contact.registered\`, the bot stored it ($registered registered"
  echo "in $reg_s s, $contacts_distinct distinct contacts). Then a warm-up of $warm_n webhooks (not counted),"
  echo "then $total status webhooks, each for a new issue of one of those contacts (round robin), sent"
  echo "open loop at $rate/s on up to 32 keep-alive connections. Each goes webhook → the bridge (issue"
  echo "recorded, \`events.okdesk.issue.status_changed\` published, 200) → JetStream → the bot's"
  echo "\`telegram-helpdesk-notify\` consumer (people of the contact looked up, sent-once check,"
  echo "\`sendMessage\`, marked sent) → «Статус заявки №N: В работе» in the person's private chat."
  echo "Latency = when the sandbox saw that message stored (\`GET /_sandbox/telegram/watch\`, a held"
  echo "request woken by every change of the fake's state) minus when the sender wrote the webhook,"
  echo "both from this machine's wall clock. notices/s = notifications per second from the first"
  echo "webhook to the last notification."
  echo
  echo "| sent | achieved/s | non-200 | delivered | undelivered | duplicates | wrong chat | notices/s | p50 ms | p90 ms | **p99 ms** | p99.9 ms | max ms | webhook answer p50 / p99 ms | CPU bridge / bot / nats / sandbox / pg / sender / other · machine |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  echo "$(jq -r '"| \(.sent) | \(.achieved_rate) | \(.non_200) | \(.notices.delivered) | \(.notices.undelivered) | \(.notices.duplicates) | \(.notices.wrong_chat) | \(.notices.notices_per_s) | \(.notices.latency_ms.p50) | \(.notices.latency_ms.p90) | **\(.notices.latency_ms.p99)** | \(.notices.latency_ms.p999) | \(.notices.latency_ms.max) | \(.webhook_ms.p50) / \(.webhook_ms.p99) |"' "$e") $(cpu_cells "$WORK/e2e-cpu.json") |"
  echo
  echo "The last notification arrived $(jq -r .notices.last_after_last_webhook_s "$e") s after the last webhook was sent; the"
  echo "sender's lag behind the schedule was at most $(jq -r .send_lag_ms.max "$e") ms (p99 $(jq -r .send_lag_ms.p99 "$e") ms); measured from the"
  echo "scheduled send time instead: p50 $(jq -r .notices.from_due_ms.p50 "$e") ms, p99 $(jq -r .notices.from_due_ms.p99 "$e") ms. The bridge counted $announced_2"
  echo "status changes announced (warm-up included); the bot counted $notified helpdesk notifications"
  echo "sent (the $people «registered» answers and the warm-up included)."
  echo
  echo "## 3. Memory"
  echo
  echo "| idle VmRSS ${settle} s after /ready | of it RssAnon / RssFile | its VmHWM | threads | before phase 1 | VmHWM after phase 1 | VmRSS after phase 1 | VmRSS / VmHWM after phase 2 |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "| **$(mib "$rss_idle")** | $(mib "$rss_idle_anon") / $(mib "$rss_idle_file") | $(mib "$rss_idle_hwm") | $threads_idle | $(mib "$rss_before") | $(mib "$rss_peak") | $(mib "$rss_after") | $(mib "$rss_e2e") / $(mib "$rss_e2e_hwm") |"
  echo
  echo "RssAnon = the process's own heap and stacks; RssFile = pages of mapped files, mostly the"
  echo "binary itself ($(mib "$bin_kib") on disk, \`target/release/okdesk-bridge\`). 15 MB = 15,000,000 bytes."
  echo
  echo "## Observations"
  echo
  observations "ingest (durable)" "$WORK/ingest-cpu.json"
  observations "ingest (ceiling)" "$WORK/ceiling-cpu.json"
  observations "webhook → notification" "$WORK/e2e-cpu.json"
  [[ -s $WORK/pool.json ]] || echo '{}' >"$WORK/pool.json"
  jq -r -n --slurpfile i "$i" --slurpfile c "$c" --slurpfile u "$WORK/ingest-cpu.json" \
    --slurpfile p "$WORK/pool.json" --arg pool "$POOL" '
    ($i[0]) as $i | ($c[0]) as $c | ($u[0]) as $u | ($p[0]) as $p
    | if $i.req_per_s < 10000 or $i.latency_ms.p99 > 25 then
        "- ingest: durable \($i.req_per_s|floor) req/s (p99 \($i.latency_ms.p99) ms); without the database and the publish \($c.req_per_s|floor) req/s (p99 \($c.latency_ms.p99) ms). "
        + (if $c.req_per_s < 10000 then "Even the ceiling is below 10,000 req/s on this machine: the HTTP stack and the parse, with wrk on the same cores, bound it before the hand-off does."
           else "The ceiling clears 10,000 req/s, the durable route does not: per request it runs a Postgres transaction (insert, row lock, update, commit: \($u.postgres_pct) % of a core in Postgres) around the JetStream publish and its ack (\($u.nats_pct) % in nats-server), and those share the \($u.cores) cores with the bridge (\($u.bridge_pct) %), wrk (\($u.loadgen_pct) %) and other processes (\($u.other_pct) %), \($u.machine_busy_pct) % of the machine busy." end)
        + (if $p.req_per_s == null then ""
           else " With \($pool) pool connections instead of 10 it made \($p.req_per_s|floor) req/s (p99 \($p.latency_ms.p99) ms)"
             + (if $p.req_per_s >= 1.1 * $i.req_per_s then
                  ": the default pool is one bound (10 connections / \($i.req_per_s|floor) req/s = \(((10000 / $i.req_per_s * 100) | floor) / 100) ms each connection is held per request: the transaction spans the publish and its ack)"
                  + (if $p.req_per_s < 10000 then ", and the larger pool still falls short: the CPU the work takes on these \($u.cores) shared cores is the other." else "." end)
                else ": not the pool; the CPU the transaction and the publish take on these \($u.cores) shared cores bounds it." end) end)
      else empty end'
  if ((rss_idle * 1024 > 15000000)); then
    echo "- idle RSS: $(mb "$rss_idle") is over 15 MB; $(mib "$rss_idle_anon") of it is anonymous memory (heap, stacks) and $(mib "$rss_idle_file") file-backed pages (the $(mib "$bin_kib") binary's code and data touched at start, and the shared libraries)$( ((rss_idle_anon * 1024 <= 15000000 && rss_idle_file > rss_idle_anon)) && echo ": the mapped binary, not the heap, is what is over the target")."
  fi
  echo
  echo "Raw results:"
  echo
  echo "\`\`\`json"
  for f in ingest ingest-cpu pool pool-cpu ceiling ceiling-cpu e2e e2e-cpu; do
    [[ -s $WORK/$f.json && $(cat "$WORK/$f.json") != '{}' ]] || continue
    jq -c --arg phase "$f" '{phase: $phase} + .' "$WORK/$f.json"
  done
  echo "\`\`\`"
} >"$out"
log "results written to ${out#"$REPO_ROOT"/}"
