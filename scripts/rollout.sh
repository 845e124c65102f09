#!/usr/bin/env bash
# Builds one service's image tagged with the git commit, replaces that one container, waits for
# /ready and rolls back to the previous tag by itself when the new one does not come up.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/rollout.sh <service> [--tag TAG] [--no-build] [--timeout SECONDS] [--skip-disabled]

  1. docker build -f deploy/Dockerfile --build-arg SERVICE=<service> -t <repo>/<service>:<TAG>
     (TAG defaults to the short git commit, with -dirty when tracked files have changes)
  2. docker compose up -d --no-deps <service>   with <SERVICE>_TAG=<TAG>
  3. waits for GET /ready inside the container (default 120 s)
  4. ready: records TAG as <SERVICE>_TAG in .env and in deploy/.tags/<service>, keeps the last
     3 tags there and removes the images of older ones
     not ready: prints the container's last log lines and redeploys the previous tag
  Every rollout appends one line to deploy/rollouts.log (tab separated):
     <UTC time> <service> <from tag> <to tag> <outcome: ok | rolled-back | failed>

Options:
  --tag TAG          deploy this tag instead of the git commit
  --no-build         do not build; the image <repo>/<service>:<TAG> must exist
  --timeout SECONDS  how long to wait for /ready (default 120)
  --skip-disabled    exit 0 without doing anything when COMPOSE_PROFILES does not enable the
                     service (the deploy workflow passes it)

Services (GATEWAY_SERVICES in scripts/lib/common.sh; each starts only when COMPOSE_PROFILES
in .env names its profile):
EOF
  echo "  $(services_help)"
  echo "See also: scripts/rollback.sh, scripts/logs.sh, scripts/verify.sh, docs/operations.md"
}

svc=""
tag=""
build=1
timeout=120
skip_disabled=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --no-build) build=0 ;;
    --skip-disabled) skip_disabled=1 ;;
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

if ! service_enabled "$svc" && [[ $skip_disabled -eq 1 ]]; then
  info "$svc: profile '$(service_field "$svc" profile)' is not in COMPOSE_PROFILES; skipped"
  exit 0
fi
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
  # the last KEEP_TAGS tags stay (history and images); older images are removed
  mapfile -t tags < <(grep -v '^[[:space:]]*$' "$history")
  if [[ ${#tags[@]} -gt $KEEP_TAGS ]]; then
    keep=("${tags[@]: -$KEEP_TAGS}")
    for old in "${tags[@]:0:${#tags[@]}-$KEEP_TAGS}"; do
      printf '%s\n' "${keep[@]}" | grep -qxF -- "$old" && continue
      if docker image rm "$repo/$svc:$old" >/dev/null 2>&1; then
        info "removed the old image $repo/$svc:$old"
      fi
    done
    printf '%s\n' "${keep[@]}" >"$history"
  fi
  record_rollout "$svc" "$prev" "$tag" ok
  log "$svc is ready on $image ($var=$tag written to .env)"
  exit 0
fi

warn "$svc did not become ready on $image; last log lines:"
compose logs --no-color --tail=50 "$svc" >&2 || true
if [[ $prev == "$tag" ]]; then
  record_rollout "$svc" "$prev" "$tag" failed
  die "no previous tag to roll back to ($var was already $tag)"
fi
log "rolling back $svc to $prev"
compose_up_tag "$svc" "$prev"
if wait_ready "$svc" "$timeout"; then
  record_rollout "$svc" "$prev" "$tag" rolled-back
  die "rollout of $tag failed; $svc is back on $prev and ready"
fi
record_rollout "$svc" "$prev" "$tag" failed
die "rollout of $tag failed, and $prev is not ready either: check 'scripts/logs.sh $svc' and 'scripts/verify.sh'"
