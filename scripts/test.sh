#!/usr/bin/env bash
# THE test command: every Rust test of the workspace against a real Postgres and NATS, the
# reduced fault-injection suite, then the deployment checks (compose file, nginx routing,
# Postgres init, shellcheck).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/test.sh [--no-faults] [--no-deploy-checks] [-- NEXTEST_ARGS...]

Runs, in order, and exits non-zero when any of them fails:
  1. scripts/dev-deps.sh          Postgres + NATS (JetStream) running, cargo-nextest installed
  2. cargo nextest run --workspace --no-fail-fast [NEXTEST_ARGS]
  3. messenger-api hub end to end with the official @microsoft/signalr client (Node,
     services/messenger-api/tests/node: npm ci, then npm test against the real binary)
  4. scripts/faults.sh --reduced  the fault-injection suite's CI subset: every flow and every
                                  fault at least once, on its own nats-server and Postgres
  5. scripts/check-deploy.sh      docker-compose.yml, nginx, Postgres init, shellcheck

Options:
  --no-faults          skip step 4
  --no-deploy-checks   skip step 5
  -h, --help           this text

Environment (defaults shown):
  TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres   (must be able to CREATE DATABASE)
  NATS_URL=nats://127.0.0.1:4222                                 (JetStream enabled)
EOF
}

deploy_checks=1
faults=1
nextest_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --no-deploy-checks) deploy_checks=0 ;;
    --no-faults) faults=0 ;;
    --) shift; nextest_args=("$@"); break ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
# DATABASE_URL is deliberately not set here: with it set, sqlx's query! macros would check
# queries against that database at compile time instead of using the committed .sqlx/ data.

cd "$REPO_ROOT"
"$REPO_ROOT/scripts/dev-deps.sh"

failed=()
log "cargo nextest run --workspace --no-fail-fast ${nextest_args[*]}"
if ! cargo nextest run --workspace --no-fail-fast "${nextest_args[@]}"; then
  failed+=("cargo nextest")
fi

# The hub must keep working with the client library the web and mobile apps use.
node_e2e() {
  local dir=$REPO_ROOT/services/messenger-api/tests/node
  if ! have node || ! have npm; then
    apt_install nodejs npm
  fi
  cargo build -p messenger-api --bin messenger-api &&
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && npm test)
}
log "messenger-api hub end to end with @microsoft/signalr (node $(node --version 2>/dev/null || echo 'to be installed'))"
if ! node_e2e; then
  failed+=("messenger-api node SignalR e2e")
fi

if [[ $faults -eq 1 ]]; then
  log "fault-injection suite, reduced (scripts/faults.sh --reduced)"
  if ! "$REPO_ROOT/scripts/faults.sh" --reduced; then
    failed+=("scripts/faults.sh --reduced")
  fi
fi
if [[ $deploy_checks -eq 1 ]]; then
  if ! "$REPO_ROOT/scripts/check-deploy.sh"; then
    failed+=("scripts/check-deploy.sh")
  fi
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
log "all tests passed"
