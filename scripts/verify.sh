#!/usr/bin/env bash
# Checks that every service is up: /health and /ready of each application service, Postgres,
# NATS, and the public /health through nginx and TLS.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/verify.sh [--local [--host HOST]] [--domain DOMAIN] [--insecure] [service...]

Default (docker compose deployment):
  - postgres: pg_isready;  nats: /healthz with JetStream
  - each service: GET /health and GET /ready inside its container
  - each service: GET https://<subdomain>.<DOMAIN>/health through nginx on this host
    (TLS verified; --insecure accepts self-signed certificates)
--local: the services run as plain processes (scripts/demo.sh): GET http://HOST:<port>/health
  and /ready (HOST default 127.0.0.1); no nginx, postgres or nats checks.

Services default to all known (GATEWAY_SERVICES in scripts/lib/common.sh): vk-connector,
telegram-bot, okdesk-bridge, messenger-api, amocrm-sync. In the compose mode a service of a
profile that COMPOSE_PROFILES does not enable (telegram-bot: `telegram`, okdesk-bridge:
`okdesk`) is skipped unless named.
Exits non-zero when anything is down.
EOF
}

mode=compose
host=127.0.0.1
domain=""
insecure=0
services=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --local) mode=local ;;
    --host) host=${2:?}; shift ;;
    --domain) domain=${2:?}; shift ;;
    --insecure) insecure=1 ;;
    -*) usage >&2; exit 2 ;;
    *) require_known_service "$1"; services+=("$1") ;;
  esac
  shift
done
named=1
if [[ ${#services[@]} -eq 0 ]]; then
  named=0
  mapfile -t services < <(service_names)
fi
have curl || die "curl not found"

ok=0
bad=0
row() {
  local status=$1 what=$2 detail=${3:-}
  if [[ $status == ok ]]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  printf '  %-5s %-40s %s\n' "$status" "$what" "$detail"
}

# check_json WHAT BODY — /health and /ready answer JSON; show the interesting part
summarize() { jq -c 'del(.timestamp)? // .' 2>/dev/null <<<"$1" || head -c 200 <<<"$1"; }

if [[ $mode == local ]]; then
  for svc in "${services[@]}"; do
    port=$(service_field "$svc" port)
    for path in /health /ready; do
      if body=$(curl -sS --max-time 5 -w '\n%{http_code}' "http://$host:$port$path" 2>&1); then
        code=${body##*$'\n'}
        body=${body%$'\n'*}
        if [[ $code == 200 ]]; then row ok "$svc $path" "$(summarize "$body")"; else row FAIL "$svc $path" "HTTP $code $(summarize "$body")"; fi
      else
        row FAIL "$svc $path" "not answering on $host:$port"
      fi
    done
  done
else
  cd "$REPO_ROOT"
  [[ -n $domain ]] || domain=$(env_get DOMAIN)
  if compose exec -T postgres pg_isready -q -U postgres >/dev/null 2>&1; then row ok postgres "pg_isready"; else row FAIL postgres "pg_isready failed"; fi
  if compose exec -T nats wget -q -O - 'http://127.0.0.1:8222/healthz?js-enabled-only=true' >/dev/null 2>&1; then
    row ok nats "healthz, JetStream enabled"
  else
    row FAIL nats "healthz failed"
  fi
  for svc in "${services[@]}"; do
    port=$(service_field "$svc" port)
    sub=$(service_field "$svc" subdomain)
    if [[ $named -eq 0 ]] && ! service_enabled "$svc"; then
      printf '  %-5s %-40s %s\n' "skip" "$svc" "profile $(service_field "$svc" profile) is not in COMPOSE_PROFILES"
      continue
    fi
    for path in /health /ready; do
      # The binary's own healthcheck (the image has no curl): prints the body on 200, else
      # the status and body, and exits 1.
      if body=$(compose exec -T "$svc" gateway-service healthcheck --path "$path" --timeout-secs 5 2>&1); then
        row ok "$svc $path" "$(summarize "$body")"
      else
        row FAIL "$svc $path" "$(summarize "${body:-container not running or not answering}")"
      fi
    done
    if [[ -z $domain ]]; then
      row FAIL "https://$sub.<DOMAIN>/health" "DOMAIN not set (.env or --domain)"
      continue
    fi
    name="$sub.$domain"
    tls=()
    [[ $insecure -eq 1 ]] && tls=(-k)
    if body=$(curl -sS "${tls[@]}" --max-time 10 --resolve "$name:443:127.0.0.1" -w '\n%{http_code}' "https://$name/health" 2>&1); then
      code=${body##*$'\n'}
      body=${body%$'\n'*}
      if [[ $code == 200 ]]; then row ok "https://$name/health" "via nginx"; else row FAIL "https://$name/health" "HTTP $code"; fi
    else
      row FAIL "https://$name/health" "$(tail -n1 <<<"$body")"
    fi
  done
fi

echo
if [[ $bad -gt 0 ]]; then
  printf 'verify: %d check(s) failed, %d ok\n' "$bad" "$ok"
  exit 1
fi
printf 'verify: all %d checks ok\n' "$ok"
