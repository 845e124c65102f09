# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Source it; do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Repository root, whatever the caller's working directory.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# The application services that compose runs, as name:port:subdomain:profile:schema.
# Adding a service to the gateway = one line here, one server block in nginx/conf.d/ (and its
# profile in nginx/gateway-sites.sh), one service in docker-compose.yml. Each service has a
# compose profile (its `profiles:` in docker-compose.yml) and starts only when
# COMPOSE_PROFILES names it; schema is its Postgres schema and login role.
GATEWAY_SERVICES=(
  "vk-connector:8081:vk:vk:vk"
  "telegram-bot:8082:tg:telegram:telegram"
  "okdesk-bridge:8083:okdesk:okdesk:okdesk"
  "amocrm-sync:8084:amocrm:amocrm:amocrm"
  "messenger-api:8085:messenger:messenger:messenger"
)

# The containers besides the application services: always started, except certbot (profile
# `tls`).
# shellcheck disable=SC2034 # used by the scripts that source this file
INFRA_SERVICES=(postgres nats nginx certbot)

log()  { printf '==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARN: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root: directly when we are root, through sudo when it is there.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif have sudo; then
    sudo -n "$@"
  else
    die "need root for: $*"
  fi
}

_APT_UPDATED=0
# apt_install PKG... — installs Debian packages that are missing; runs apt-get update once.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  have apt-get || die "apt-get not found; install by hand: ${missing[*]}"
  if [[ $_APT_UPDATED -eq 0 ]]; then
    info "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    _APT_UPDATED=1
  fi
  info "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_until SECONDS DESCRIPTION COMMAND... — polls COMMAND every 0.5 s until it succeeds
# or SECONDS have passed. Returns 1 on time-out.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for ${what}"
      return 1
    fi
    sleep 0.5
  done
}

# service_field NAME FIELD — FIELD is port, subdomain, profile or schema. certbot answers
# profile (tls) only; the other infrastructure containers are unknown here.
service_field() {
  local entry name port sub profile schema
  if [[ $1 == certbot ]]; then
    [[ $2 == profile ]] && echo tls
    return 0
  fi
  for entry in "${GATEWAY_SERVICES[@]}"; do
    IFS=: read -r name port sub profile schema <<<"$entry"
    if [[ $name == "$1" ]]; then
      case $2 in
        port) echo "$port" ;;
        subdomain) echo "$sub" ;;
        profile) echo "$profile" ;;
        schema) echo "$schema" ;;
      esac
      return 0
    fi
  done
  return 1
}

# service_of_schema SCHEMA — the application service that owns SCHEMA (vk -> vk-connector).
service_of_schema() {
  local entry name schema
  for entry in "${GATEWAY_SERVICES[@]}"; do
    IFS=: read -r name _ _ _ schema <<<"$entry"
    [[ $schema == "$1" ]] && { echo "$name"; return 0; }
  done
  return 1
}

# The Postgres schemas of the services, one per line.
service_schemas() {
  local entry schema
  for entry in "${GATEWAY_SERVICES[@]}"; do
    IFS=: read -r _ _ _ _ schema <<<"$entry"
    echo "$schema"
  done
}

# "vk-connector (profile vk), telegram-bot (profile telegram), …" for --help texts.
services_help() {
  local entry name profile helps=()
  for entry in "${GATEWAY_SERVICES[@]}"; do
    IFS=: read -r name _ _ profile _ <<<"$entry"
    helps+=("$name (profile $profile)")
  done
  local joined
  printf -v joined "%s, " "${helps[@]}"
  echo "${joined%, }"
}

service_names() {
  local entry
  for entry in "${GATEWAY_SERVICES[@]}"; do echo "${entry%%:*}"; done
}

require_known_service() {
  [[ -n $(service_field "$1" port 2>/dev/null) ]] || die "unknown service '$1' (known: $(service_names | tr '\n' ' '))"
}

# vk-connector -> VK_CONNECTOR_TAG, the variable docker-compose.yml reads for the image tag.
tag_var() {
  local up=${1^^}
  echo "${up//-/_}_TAG"
}

# The profiles COMPOSE_PROFILES enables (environment, else .env), one per line.
enabled_profiles() {
  local profile_list=() p
  IFS=, read -r -a profile_list <<<"$(env_get COMPOSE_PROFILES)"
  for p in "${profile_list[@]}"; do
    p=${p// /}
    [[ -z $p ]] || echo "$p"
  done
}

# service_enabled NAME — COMPOSE_PROFILES enables NAME's profile (or NAME has none).
service_enabled() {
  local profile
  profile=$(service_field "$1" profile) || return 1
  # no `enabled_profiles | grep -q`: grep's early exit can fail the pipe under pipefail
  [[ -z $profile || $'\n'$(enabled_profiles)$'\n' == *$'\n'"$profile"$'\n'* ]]
}

# docker compose v2 plugin when present, else the v1 docker-compose binary. A gateway service
# named in the arguments brings its profile along (`--profile telegram` for telegram-bot), so
# that `exec`, `logs`, `ps` and `up --no-deps` reach it whatever COMPOSE_PROFILES says; the
# profiles of .env apply as well.
compose() {
  local arg profile flags=() p list_files=()
  for arg in "$@"; do
    profile=$(service_field "$arg" profile 2>/dev/null) || continue
    [[ -n $profile ]] && flags+=(--profile "$profile")
  done
  if [[ ${#flags[@]} -gt 0 ]]; then
    while read -r p; do flags+=(--profile "$p"); done < <(enabled_profiles)
  fi
  # COMPOSE_FILE (environment, else .env; ':'-separated, relative to the checkout) adds e.g.
  # the Traefik override, deploy/dokploy/docker-compose.override.yml
  local files=() f list
  list=$(env_get COMPOSE_FILE)
  IFS=: read -r -a list_files <<<"${list:-docker-compose.yml}"
  for f in "${list_files[@]}"; do
    [[ -n $f ]] || continue
    [[ $f == /* ]] || f=$REPO_ROOT/$f
    files+=(-f "$f")
  done
  if docker compose version >/dev/null 2>&1; then
    docker compose --project-directory "$REPO_ROOT" "${files[@]}" "${flags[@]}" "$@"
  elif have docker-compose; then
    docker-compose --project-directory "$REPO_ROOT" "${files[@]}" "${flags[@]}" "$@"
  else
    die "neither 'docker compose' nor 'docker-compose' is installed"
  fi
}

# env_get NAME — value of NAME from the environment, else from $REPO_ROOT/.env, else empty.
env_get() {
  local name=$1 line
  if [[ -n ${!name:-} ]]; then
    echo "${!name}"
    return 0
  fi
  [[ -f $REPO_ROOT/.env ]] || return 0
  line=$(grep -E "^${name}=" "$REPO_ROOT/.env" | tail -n1 || true)
  line=${line#*=}
  line=${line%\"}; line=${line#\"}
  line=${line%\'}; line=${line#\'}
  echo "$line"
}

# env_set NAME VALUE — sets NAME=VALUE in $REPO_ROOT/.env (replacing or appending).
env_set() {
  local name=$1 value=$2 file=$REPO_ROOT/.env tmp
  [[ -f $file ]] || die "$file not found (cp .env.example .env and fill it in)"
  tmp=$(mktemp "$file.XXXXXX")
  if grep -qE "^${name}=" "$file"; then
    awk -v n="$name" -v v="$value" 'BEGIN{FS=OFS="="} $1==n {print n "=" v; next} {print}' "$file" >"$tmp"
  else
    cat "$file" >"$tmp"
    printf '%s=%s\n' "$name" "$value" >>"$tmp"
  fi
  chmod --reference="$file" "$tmp" 2>/dev/null || true
  mv "$tmp" "$file"
}

# ---------------------------------------------------------------- compose deployments
# The image repository of the application images (<repo>/<service>:<tag>).
image_repo() {
  local r
  r=$(env_get IMAGE_REPOSITORY)
  echo "${r:-messenger-gateway}"
}

# The tag a service runs now, as .env says (docker-compose.yml defaults to latest).
current_tag() {
  local t
  t=$(env_get "$(tag_var "$1")")
  echo "${t:-latest}"
}

# compose_up_tag SERVICE TAG — (re)creates that one container from <repo>/SERVICE:TAG.
compose_up_tag() {
  local svc=$1 tag=$2 var
  var=$(tag_var "$svc")
  (
    export "$var=$tag"
    compose up -d --no-deps "$svc"
  )
}

# service_ready SERVICE — /ready answers 200 inside the container (the binary's own
# `healthcheck` subcommand: the image has no curl).
service_ready() {
  local svc=$1
  compose exec -T "$svc" gateway-service healthcheck --timeout-secs 3 >/dev/null
}

# wait_ready SERVICE SECONDS — polls /ready; fails early when the container stopped.
wait_ready() {
  local svc=$1 timeout=$2 deadline state
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if service_ready "$svc" >/dev/null 2>&1; then
      return 0
    fi
    state=$(docker inspect -f '{{.State.Status}}' "$(compose ps -q "$svc" 2>/dev/null | head -n1)" 2>/dev/null || echo missing)
    case $state in
      exited | dead | missing)
        warn "$svc container is $state"
        return 1
        ;;
    esac
    sleep 2
  done
  warn "$svc not ready after ${timeout}s"
  return 1
}

# The history of deployed tags of a service, one per line, newest last.
tag_history_file() { echo "$REPO_ROOT/deploy/.tags/$1"; }

# How many tags (and their images) rollout.sh keeps per service, the running one included.
# shellcheck disable=SC2034 # used by rollout.sh
KEEP_TAGS=3

# record_rollout SERVICE FROM TO OUTCOME — appends one line to deploy/rollouts.log:
# <UTC time> TAB <service> TAB <from> TAB <to> TAB <outcome>
# (outcome: ok, rolled-back, failed, rollback-ok, rollback-failed).
record_rollout() {
  local file=$REPO_ROOT/deploy/rollouts.log
  mkdir -p "$(dirname "$file")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" "$4" >>"$file"
}
