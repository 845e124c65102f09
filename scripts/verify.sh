#!/usr/bin/env bash
# Checks that every service is up: /health and /ready of each application service, Postgres,
# NATS, and the public /health through nginx and TLS.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/verify.sh [--local [--host HOST]] [--domain DOMAIN] [--insecure]
                         [--since DURATION] [--token JWT] [service...]

Default (docker compose deployment), one line per check:
  - postgres: pg_isready, and its connections per role (fails at 90% of max_connections)
  - nats: /healthz with JetStream;  nginx: nginx -t inside its container
  - each running service, one line: its version (/health), ready or what is failing (/ready)
  - each service: GET https://<subdomain>.<DOMAIN>/health through nginx on this host
    (TLS verified; --insecure accepts self-signed certificates)
  - each service: no ERROR line in its log of the last --since (default 10m)
  - messenger-api: Swagger UI (https://messenger.<DOMAIN>/swagger/) answers 200, /api/chats
    without a token 401, and the hub's WebSocket upgrade of /hubs/chat goes through nginx:
    101 with --token (or MESSENGER_VERIFY_TOKEN, an access token of any user), else the
    service's own 401 (nginx passed the upgrade on; a 404 or 502 would be nginx's)
--local: the services run as plain processes (scripts/demo.sh): GET http://HOST:<port>/health
  and /ready (HOST default 127.0.0.1); no nginx, postgres or nats checks.

Services default to those COMPOSE_PROFILES enables (all of them with --local); a service
named on the command line is checked whatever the profiles say. Known:
EOF
  echo "  $(services_help)"
  echo "Exits non-zero when anything is down."
}

mode=compose
host=127.0.0.1
domain=""
insecure=0
since=10m
token=${MESSENGER_VERIFY_TOKEN:-}
services=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --local) mode=local ;;
    --host) host=${2:?}; shift ;;
    --domain) domain=${2:?}; shift ;;
    --insecure) insecure=1 ;;
    --since) since=${2:?}; shift ;;
    --token) token=${2:?}; shift ;;
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

# /health and /ready answer JSON; show the interesting part
summarize() { jq -c 'del(.timestamp)? // .' 2>/dev/null <<<"$1" || head -c 200 <<<"$1"; }
# json_field JSON FILTER — a jq filter's raw output, empty when it is no JSON
json_field() { jq -r "$2" 2>/dev/null <<<"$(grep -o '{.*}' <<<"$1" | head -n1)" || true; }

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
  db=$(env_get POSTGRES_DB)
  db=${db:-gateway}
  tls=()
  [[ $insecure -eq 1 ]] && tls=(-k)
  # public URL through nginx on this host: https_code SUB PATH [CURL ARGS…] prints the status
  https_code() {
    local name="$1.$domain" path=$2
    shift 2
    local code
    code=$(curl -sS "${tls[@]}" --http1.1 --max-time 10 --resolve "$name:443:127.0.0.1" -o /dev/null -w '%{http_code}' "$@" "https://$name$path" 2>/dev/null || true)
    # 000: no HTTP answer at all (nothing on 443, or the TLS handshake failed)
    [[ $code == 000 ]] && code=""
    echo "$code"
  }

  if compose exec -T postgres pg_isready -q -U postgres >/dev/null 2>&1; then row ok postgres "pg_isready"; else row FAIL postgres "pg_isready failed"; fi
  if conns=$(compose exec -T postgres psql -X -At -U postgres -d "$db" -c \
    "select coalesce(usename, '-') || '=' || count(*) from pg_stat_activity where backend_type = 'client backend' group by usename order by 1" 2>/dev/null) &&
    max=$(compose exec -T postgres psql -X -At -U postgres -d "$db" -c 'show max_connections' 2>/dev/null) &&
    [[ ${max//[^0-9]/} =~ ^[0-9]+$ ]]; then
    total=0
    while read -r c; do [[ -n $c ]] && total=$((total + ${c##*=})); done <<<"$conns"
    detail="$total of ${max//[^0-9]/}: $(tr '\n' ' ' <<<"$conns" | sed 's/ $//')"
    if ((total * 10 >= ${max//[^0-9]/} * 9)); then row FAIL "postgres connections" "$detail"; else row ok "postgres connections" "$detail"; fi
  else
    row FAIL "postgres connections" "psql failed"
  fi
  if compose exec -T nats wget -q -O - 'http://127.0.0.1:8222/healthz?js-enabled-only=true' >/dev/null 2>&1; then
    row ok nats "healthz, JetStream enabled"
  else
    row FAIL nats "healthz failed"
  fi
  if [[ $(env_get COMPOSE_FILE) == *deploy/dokploy/* ]]; then
    printf '  %-5s %-40s %s\n' "skip" "nginx" "Traefik override in COMPOSE_FILE: Traefik routes the subdomains"
  elif nginx_out=$(compose exec -T nginx nginx -t -q 2>&1); then
    row ok nginx "nginx -t; serving: $(compose exec -T nginx sh -c 'ls /etc/nginx/conf.d' 2>/dev/null | sed -n 's/\.conf$//p' | grep -vx default | tr '\n' ' ')"
  else
    row FAIL nginx "$(tail -n1 <<<"${nginx_out:-not running}")"
  fi

  for svc in "${services[@]}"; do
    sub=$(service_field "$svc" subdomain)
    if [[ $named -eq 0 ]] && ! service_enabled "$svc"; then
      printf '  %-5s %-40s %s\n' "skip" "$svc" "profile $(service_field "$svc" profile) is not in COMPOSE_PROFILES"
      continue
    fi
    # The binary's own healthcheck (the image has no curl): prints the body on 200, else the
    # status and body, and exits 1.
    health=$(compose exec -T "$svc" gateway-service healthcheck --path /health --timeout-secs 5 2>&1) || health=""
    version=$(json_field "$health" '.version // empty')
    if [[ -z $health || -z $version ]]; then
      row FAIL "$svc" "not running or not answering /health"
    elif ready=$(compose exec -T "$svc" gateway-service healthcheck --path /ready --timeout-secs 5 2>&1); then
      row ok "$svc" "version $version, ready"
    else
      failing=$(json_field "$ready" '(.failing // []) | join(",")')
      row FAIL "$svc" "version $version, NOT ready: failing ${failing:-?} ($(summarize "$(grep -o '{.*}' <<<"$ready" | head -n1)"))"
    fi

    if [[ -z $domain ]]; then
      row FAIL "https://$sub.<DOMAIN>/health" "DOMAIN not set (.env or --domain)"
    else
      code=$(https_code "$sub" /health)
      if [[ $code == 200 ]]; then row ok "https://$sub.$domain/health" "via nginx"; else row FAIL "https://$sub.$domain/health" "${code:+HTTP }${code:-no answer on 443 (nginx down, or the TLS handshake failed: --insecure?)}"; fi
    fi

    errors=$(compose logs --no-color --since "$since" "$svc" 2>/dev/null | grep -E '"level":"ERROR"|\bERROR\b|\bpanicked\b' || true)
    if [[ -z $errors ]]; then
      row ok "$svc log, last $since" "no ERROR line"
    else
      first=$(head -n1 <<<"$errors" | sed 's/^[^|]*| //')
      row FAIL "$svc log, last $since" "$(wc -l <<<"$errors" | tr -d ' ') ERROR line(s), first: $(json_field "$first" '.fields.message // .message // empty' | head -c 160)"
    fi

    if [[ $svc == messenger-api && -n $domain ]]; then
      code=$(https_code messenger /swagger/ -L)
      if [[ $code == 200 ]]; then row ok "messenger Swagger UI" "https://messenger.$domain/swagger/ 200"; else row FAIL "messenger Swagger UI" "HTTP ${code:-no answer}"; fi
      code=$(https_code messenger /api/chats)
      if [[ $code == 401 ]]; then row ok "messenger /api/chats without token" "401"; else row FAIL "messenger /api/chats without token" "HTTP ${code:-no answer}, expected 401"; fi
      ws=(-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
      if [[ -n $token ]]; then
        # the 101 keeps the connection open: curl ends at --max-time 3 and still reports it
        code=$(curl -sS "${tls[@]}" --http1.1 --max-time 3 --resolve "messenger.$domain:443:127.0.0.1" -o /dev/null -w '%{http_code}' \
          "${ws[@]}" -H "Authorization: Bearer $token" "https://messenger.$domain/hubs/chat" 2>/dev/null || true)
        if [[ $code == 101 ]]; then row ok "messenger hub WebSocket via nginx" "101 Switching Protocols"; else row FAIL "messenger hub WebSocket via nginx" "HTTP ${code:-no answer}, expected 101"; fi
      else
        code=$(https_code messenger /hubs/chat "${ws[@]}")
        if [[ $code == 401 ]]; then
          row ok "messenger hub WebSocket via nginx" "upgrade reaches the hub (401 without a token; --token for the 101)"
        else
          row FAIL "messenger hub WebSocket via nginx" "HTTP ${code:-no answer}, expected the hub's 401"
        fi
      fi
    fi
  done
fi

echo
if [[ $bad -gt 0 ]]; then
  printf 'verify: %d check(s) failed, %d ok\n' "$bad" "$ok"
  exit 1
fi
printf 'verify: all %d checks ok\n' "$ok"
