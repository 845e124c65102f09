#!/usr/bin/env bash
# Follows the logs of one service (or of postgres, nats, nginx, certbot), or of all of them.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/logs.sh [service...] [--tail N] [--since DURATION] [--no-follow] [--pretty]
                       [--grep REGEX]

  docker compose logs -f --tail=200 <service>...
Without a service: every running one (the enabled services, postgres, nats, nginx, and
certbot with the tls profile), each line prefixed with its container's name.

Options:
  --tail N          lines of history to start with, per container (default 200)
  --since DURATION  only logs newer than this, e.g. 10m, 2h, 2026-01-01T12:00:00
  --no-follow       print and exit instead of following
  --pretty          render the services' JSON log lines as "time level message fields" (needs jq)
  --grep REGEX      only the lines matching REGEX (grep -E, case-insensitive), e.g.
                    --grep '"level":"(ERROR|WARN)"' or --grep <request id>

Services:
EOF
  echo "  $(services_help)"
  echo "  postgres, nats, nginx, certbot (profile tls)"
}

svcs=()
pattern=""
tail_n=200
since=""
follow=1
pretty=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --tail) tail_n=${2:?}; shift ;;
    --since) since=${2:?}; shift ;;
    --no-follow) follow=0 ;;
    --pretty) pretty=1 ;;
    --grep) pattern=${2:?--grep needs a regular expression}; shift ;;
    -*) usage >&2; exit 2 ;;
    *) svcs+=("$1") ;;
  esac
  shift
done
for svc in "${svcs[@]}"; do
  case $svc in
    postgres | nats | nginx | certbot) ;;
    *) require_known_service "$svc" ;;
  esac
done
# several containers (or all): --pretty keeps the container's name in front of each line
many=0
[[ ${#svcs[@]} -eq 1 ]] || many=1
# filter: --grep, or nothing
filter() {
  if [[ -n $pattern ]]; then grep --line-buffered -E -i -- "$pattern" || true; else cat; fi
}

args=(logs --no-color "--tail=$tail_n")
[[ $follow -eq 1 ]] && args+=(-f)
[[ -n $since ]] && args+=("--since=$since")

if [[ $pretty -eq 1 ]]; then
  have jq || die "--pretty needs jq"
  # "<service>  | {json}" -> "[<service>] time LEVEL message key=value…"; non-JSON lines pass
  # unchanged
  compose "${args[@]}" "${svcs[@]}" | filter | sed -u -E 's/^([^ |]+)[ ]*\| (.*)$/\1\t\2/' | jq -R -r --unbuffered --arg many "$many" '
    (if test("\t") then split("\t") else ["", .] end) as [$who, $line0]
    | $line0 as $line
    | ($line | try fromjson catch null) as $j
    | if ($j | type) == "object" then
        [($j.timestamp // $j.time // ""), (($j.level // "") | ascii_upcase),
         ($j.fields.message // $j.message // $j.msg // ""),
         (($j.fields // {}) | del(.message) | to_entries | map("\(.key)=\(.value)") | join(" "))]
        | join(" ")
      else $line end
    | if $many == "1" and $who != "" then "[\($who)] " + . else . end'
else
  compose "${args[@]}" "${svcs[@]}" | filter
fi
