#!/usr/bin/env bash
# Builds one service's image tagged with the git commit, replaces that one container, waits for
# /ready and rolls back to the previous tag by itself when the new one does not come up.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/rollout.sh <service> [--tag TAG] [--no-build] [--timeout SECONDS]

  1. docker build -f deploy/Dockerfile --build-arg SERVICE=<service> -t <repo>/<service>:<TAG>
     (TAG defaults to the short git commit, with -dirty when tracked files have changes)
  2. docker compose up -d --no-deps <service>   with <SERVICE>_TAG=<TAG>
  3. waits for GET /ready inside the container (default 120 s)
  4. ready: records TAG as <SERVICE>_TAG in .env and in deploy/.tags/<service>
     not ready: prints the container's last log lines and redeploys the previous tag

Options:
  --tag TAG          deploy this tag instead of the git commit
  --no-build         do not build; the image <repo>/<service>:<TAG> must exist
  --timeout SECONDS  how long to wait for /ready (default 120)

Services: vk-connector, telegram-bot, okdesk-bridge, messenger-api, amocrm-sync
(GATEWAY_SERVICES in scripts/lib/common.sh). telegram-bot belongs to the compose profile
`telegram`, okdesk-bridge to `okdesk`: put them into COMPOSE_PROFILES in .env
(COMPOSE_PROFILES=telegram,okdesk) so that `docker compose up -d` keeps them running too.
See also: scripts/rollback.sh, scripts/logs.sh, scripts/verify.sh, docs/operations.md
EOF
}

svc=""
tag=""
build=1
timeout=120
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --no-build) build=0 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift ;;
    -*) usage >&2; exit 2 ;;
    *)
      [[ -z $svc ]] || { usage >&2; exit 2; }
      svc=$1
      ;;
  esac
  shift
done
[[ -n $svc ]] || { usage >&2; exit 2; }
require_known_service "$svc"
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
[[ -f $REPO_ROOT/.env ]] || die ".env not found: cp .env.example .env and fill it in"
have docker || die "docker not found"
cd "$REPO_ROOT"

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -z $tag ]]; then
  tag=$(git rev-parse --short=12 HEAD 2>/dev/null) || die "not a git checkout: pass --tag"
  git diff --quiet HEAD -- 2>/dev/null || tag="$tag-dirty"
fi
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag '$tag'"

repo=$(image_repo)
image="$repo/$svc:$tag"
var=$(tag_var "$svc")
prev=$(current_tag "$svc")
history=$(tag_history_file "$svc")
mkdir -p "$(dirname "$history")"

if ! service_enabled "$svc"; then
  warn "$svc belongs to the compose profile '$(service_field "$svc" profile)', which COMPOSE_PROFILES in .env does not enable: it is deployed now, but 'docker compose up -d' and 'down' leave it out"
fi

log "rollout $svc: $prev -> $tag"
if [[ $build -eq 1 ]]; then
  log "building $image"
  DOCKER_BUILDKIT=1 docker build -f deploy/Dockerfile \
    --build-arg "SERVICE=$svc" --build-arg "GIT_COMMIT=$commit" \
    -t "$image" .
else
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image not found (drop --no-build to build it)"
fi

log "replacing the $svc container"
compose_up_tag "$svc" "$tag"

log "waiting up to ${timeout}s for $svc /ready"
if wait_ready "$svc" "$timeout"; then
  env_set "$var" "$tag"
  # keep the tag that ran before, so that rollback.sh has somewhere to go back to
  if [[ ! -s $history ]]; then
    echo "$prev" >"$history"
  fi
  [[ $(tail -n1 "$history") == "$tag" ]] || echo "$tag" >>"$history"
  log "$svc is ready on $image ($var=$tag written to .env)"
  exit 0
fi

warn "$svc did not become ready on $image; last log lines:"
compose logs --no-color --tail=50 "$svc" >&2 || true
if [[ $prev == "$tag" ]]; then
  die "no previous tag to roll back to ($var was already $tag)"
fi
log "rolling back $svc to $prev"
compose_up_tag "$svc" "$prev"
if wait_ready "$svc" "$timeout"; then
  die "rollout of $tag failed; $svc is back on $prev and ready"
fi
die "rollout of $tag failed, and $prev is not ready either: check 'scripts/logs.sh $svc' and 'scripts/verify.sh'"
