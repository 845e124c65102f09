#!/usr/bin/env bash
# The fault-injection suite (issue 14): per flow and fault scenario, N events in, a reconciliation
# at the other side (0 lost, 0 duplicated, 0 order inversions per conversation, dead letters only
# for the poison, services ready afterwards). The harness is scripts/faults/harness.py (Python 3,
# standard library); docs/faults.md says what each scenario does and how to read the output.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/faults.sh [--reduced [--known-failures]] [--skip-build] [--n N] [--flow NAME]... [--scenario NAME]...
                         [--keep] [--report FILE]

Starts its own nats-server (JetStream, own store directory, free port) and its own Postgres
cluster (initdb/pg_ctl of /usr/lib/postgresql/15/bin into a temporary directory, free port,
trust auth) — never the machine's shared ones — then, for each flow × scenario, a fresh
database, NATS subject prefix and sandbox, the flow's services (target/debug binaries), and:
sends N events from several conversations (each conversation in order), injects the fault
mid-burst, waits (polling, with deadlines) until every accepted event arrived and every durable
consumer is idle, and prints one line:
  flow scenario sent= delivered= duplicates= lost= inversions= dead_letters= recover= PASS|FAIL

Flows:     vk-chatwoot, chatwoot-vk, tg-topic, topic-tg, okdesk-tg, amocrm-pg, messenger-hub
Scenarios: baseline, kill9 (twice), nats-restart, pg-restart, upstream-500, upstream-429,
           upstream-timeout, dup-reorder, poison, replicas

Options:
  --reduced      the CI subset: N=40, 14 runs that cover every flow and every scenario once
                 at least (a few minutes on 2 cores)
  (default)      the full matrix, N=80, every applicable flow × scenario; writes
                 bench/results/faults.md
  --known-failures  with --reduced: also the combinations that fail today (docs/faults.md,
                 "Findings")
  --n N          events per run
  --flow NAME / --scenario NAME   only these (repeatable; bench/results/faults.md is left alone)
  --skip-build   use the binaries already in target/debug (else: cargo build -p for the six)
  --keep         keep the work directory (logs of every process, the NATS store, the cluster)
  --report FILE  where the full run writes its table (default bench/results/faults.md)
Exit status: 0 when every run passed, 1 otherwise. Every process and temporary directory the
suite made is removed on exit, also on failure, Ctrl-C or SIGTERM; the logs of the failed runs
(each process's log and reconcile.json) are copied to target/faults-logs/<time>/ first.
Environment: FAULTS_NATS_SERVER (nats-server on PATH), FAULTS_PG_BIN
(/usr/lib/postgresql/15/bin), FAULTS_LOG_LEVEL (info), CARGO_TARGET_DIR.
EOF
}

build=1
reduced=0
partial=0
report=""
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --reduced) reduced=1; args+=(--reduced) ;;
    --skip-build) build=0 ;;
    --keep) args+=(--keep) ;;
    --known-failures) args+=(--known-failures) ;;
    --flow | --scenario) partial=1; args+=("$1" "${2:?$1 needs a value}"); shift ;;
    --n) args+=("$1" "${2:?$1 needs a value}"); shift ;;
    --report) report=${2:?--report needs a file}; shift ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

have python3 || die "python3 is needed"
have psql || die "psql is needed"
PG_BIN=${FAULTS_PG_BIN:-/usr/lib/postgresql/15/bin}
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "initdb/pg_ctl not found in $PG_BIN (set FAULTS_PG_BIN)"
NATS_BIN=${FAULTS_NATS_SERVER:-nats-server}
have "$NATS_BIN" || die "nats-server not found (apt-get install nats-server, or set FAULTS_NATS_SERVER)"

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
if [[ $build -eq 1 ]]; then
  log "building the services and the sandbox (debug)"
  (cd "$REPO_ROOT" && cargo build -q -p sandbox -p vk-connector -p amocrm-sync -p messenger-api \
    -p telegram-bot -p okdesk-bridge)
fi

# only the full matrix replaces bench/results/faults.md; a part of it writes where --report says
if [[ $reduced -eq 0 && $partial -eq 0 ]]; then
  args+=(--report "${report:-$REPO_ROOT/bench/results/faults.md}")
elif [[ -n $report ]]; then
  args+=(--report "$report")
fi

PYTHONDONTWRITEBYTECODE=1 exec python3 "$REPO_ROOT/scripts/faults/harness.py" --bin-dir "$TARGET_DIR/debug" --log-dir "$TARGET_DIR/faults-logs" \
  --nats-server "$NATS_BIN" "${args[@]}"
