#!/usr/bin/env bash
# Follows the logs of one service (or of postgres, nats, nginx).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/logs.sh <service> [--tail N] [--since DURATION] [--no-follow] [--pretty]

  docker compose logs -f --tail=200 <service>

Options:
  --tail N          lines of history to start with (default 200)
  --since DURATION  only logs newer than this, e.g. 10m, 2h, 2026-01-01T12:00:00
  --no-follow       print and exit instead of following
  --pretty          render the services' JSON log lines as "time level message fields" (needs jq)

Services: vk-connector, telegram-bot, okdesk-bridge, messenger-api, amocrm-sync, postgres, nats,
nginx
EOF
}

svc=""
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
    -*) usage >&2; exit 2 ;;
    *)
      [[ -z $svc ]] || { usage >&2; exit 2; }
      svc=$1
      ;;
  esac
  shift
done
[[ -n $svc ]] || { usage >&2; exit 2; }
case $svc in
  postgres | nats | nginx) ;;
  *) require_known_service "$svc" ;;
esac

args=(logs --no-color "--tail=$tail_n")
[[ $follow -eq 1 ]] && args+=(-f)
[[ -n $since ]] && args+=("--since=$since")

if [[ $pretty -eq 1 ]]; then
  have jq || die "--pretty needs jq"
  # "<service>  | {json}" -> "time LEVEL message key=value…"; non-JSON lines pass unchanged
  compose "${args[@]}" "$svc" | sed -u 's/^[^|]*| //' | jq -R -r --unbuffered '
    . as $line | (try fromjson catch null) as $j
    | if ($j | type) == "object" then
        [($j.timestamp // $j.time // ""), (($j.level // "") | ascii_upcase),
         ($j.fields.message // $j.message // $j.msg // ""),
         (($j.fields // {}) | del(.message) | to_entries | map("\(.key)=\(.value)") | join(" "))]
        | join(" ")
      else $line end'
else
  compose "${args[@]}" "$svc"
fi
