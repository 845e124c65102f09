#!/usr/bin/env bash
# Returns one service to the tag it ran before the last rollout (or to a tag you name).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/rollback.sh <service> [--to TAG] [--list] [--timeout SECONDS]

Redeploys the previous image tag of <service>, recorded by scripts/rollout.sh in
deploy/.tags/<service> (one tag per line, newest last), waits for /ready and writes the tag
to .env (<SERVICE>_TAG). Each rollback steps one further back.

Options:
  --to TAG           go to this tag (its image must exist locally: docker images <repo>/<service>)
  --list             print the recorded tags, newest last, and exit
  --timeout SECONDS  how long to wait for /ready (default 120)

Each rollback appends a line to deploy/rollouts.log (outcome rollback-ok or rollback-failed).
Services:
EOF
  echo "  $(services_help)"
}

svc=""
to=""
list=0
timeout=120
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --to) to=${2:?--to needs a tag}; shift ;;
    --list) list=1 ;;
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
cd "$REPO_ROOT"

history=$(tag_history_file "$svc")
if [[ $list -eq 1 ]]; then
  if [[ -s $history ]]; then cat "$history"; else info "no tags recorded for $svc yet"; fi
  exit 0
fi
[[ -f $REPO_ROOT/.env ]] || die ".env not found"

var=$(tag_var "$svc")
current=$(current_tag "$svc")
mapfile -t tags < <(grep -v '^[[:space:]]*$' "$history" 2>/dev/null || true)

pop=0
if [[ -n $to ]]; then
  target=$to
else
  # The newest entry is what runs now; the one before it is where we go.
  [[ ${#tags[@]} -ge 2 ]] || die "no previous tag recorded for $svc in $history (use --to TAG)"
  [[ ${tags[-1]} == "$current" ]] ||
    warn "$var in .env is '$current' but the newest recorded tag is '${tags[-1]}'; stepping back from the record"
  target=${tags[-2]}
  pop=1
fi

image="$(image_repo)/$svc:$target"
docker image inspect "$image" >/dev/null 2>&1 || die "image $image not found on this host"

log "rollback $svc: $current -> $target"
compose_up_tag "$svc" "$target"
if ! wait_ready "$svc" "$timeout"; then
  compose logs --no-color --tail=50 "$svc" >&2 || true
  record_rollout "$svc" "$current" "$target" rollback-failed
  die "$svc is not ready on $target; .env still says $var=$current (run scripts/rollout.sh or rollback.sh --to <tag>)"
fi

env_set "$var" "$target"
record_rollout "$svc" "$current" "$target" rollback-ok
if [[ $pop -eq 1 ]]; then
  printf '%s\n' "${tags[@]:0:${#tags[@]}-1}" >"$history"
else
  echo "$target" >>"$history"
fi
log "$svc is ready on $image ($var=$target written to .env)"
