#!/usr/bin/env bash
# Runs the gateway locally against the sandbox (fake VK, Chatwoot, amoCRM, Telegram and Okdesk) and
# walks one conversation through it: a VK user writes, the message appears in Chatwoot, an agent
# answers, the answer is sent to the VK user. Then amoCRM posts a lead webhook (its real form format)
# to amocrm-sync and the lead appears in Postgres; a messenger user's message is pushed over the hub;
# a Telegram customer writes to the bot, gets a topic in the operators' group, and an operator's
# answer in the topic reaches the customer. Last, okdesk-bridge starts: a person registers with the
# bot's Okdesk helpdesk, opens an issue with one message, and hears in Telegram when an engineer
# changes its status in Okdesk. Needs no accounts and no internet.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/demo.sh [--once] [--skip-build]
       scripts/demo.sh stop | status

Starts, on this machine:
  sandbox       fake VK API + Chatwoot + amoCRM + Telegram Bot API + Okdesk API on 127.0.0.1:9000
                (control API: /_sandbox/…)
  vk-connector  on 127.0.0.1:8081, database gateway_demo (dropped and created afresh),
                NATS subjects and streams prefixed with "demo" (never mixed with the tests')
  amocrm-sync   on 127.0.0.1:8084, same database (schema amocrm) and NATS prefix
  messenger-api on 127.0.0.1:8085, same database (schema messenger) and NATS prefix
  telegram-bot  on 127.0.0.1:8082, same database (schema telegram) and NATS prefix, long polling
                the sandbox's Bot API (token 7000000001:AAF-sandbox-test-token, group
                -1001000000001), with the Okdesk helpdesk on (OKDESK_ENABLED=true)
  okdesk-bridge on 127.0.0.1:8083 (started after the Telegram relay), same database (schema
                okdesk) and NATS prefix, against the sandbox's Okdesk API (token
                okdesk-test-token); the sandbox posts Okdesk webhooks to it
then plays one conversation through them and prints each step:
  VK user Иван Петров (id 1001) writes -> Chatwoot conversation -> agent reply -> VK messages.send
  amoCRM form webhook leads[add] -> events.amocrm.lead.created -> row in amocrm.leads
  messenger: `messenger-api admin create` and `invite create`, two users register, one logs in,
  the other listens on the hub (@microsoft/signalr, Node) and gets the message pushed
  Telegram: customer Ivan (5000001) writes to the bot -> getUpdates -> a forum topic in the
  operators' group with his message -> operator Olga answers in the topic -> the customer's chat
  Okdesk: Мария (5000002) sends /register, «👤 Частное лицо», her full name and phone (typed)
  -> cmd.okdesk.contact.register -> an Okdesk contact -> «Готово: вы зарегистрированы…»;
  «📝 Создать заявку» and one message -> cmd.okdesk.issue.create -> «Заявка №N создана: <link>»;
  an engineer sets the issue "in_progress" in Okdesk -> webhook new_ticket_status ->
  events.okdesk.issue.status_changed -> «Статус заявки №N: В работе» in her chat
Both processes keep running afterwards (PIDs, logs and URLs are printed) until
`scripts/demo.sh stop`; with --once they are stopped at the end.

Options:
  --once        stop both processes when the walk-through is done (exit code tells the result)
  --skip-build  use the binaries already built in target/debug
Environment:
  DEMO_SANDBOX_PORT (9000), DEMO_VK_PORT (8081), DEMO_AMOCRM_PORT (8084), DEMO_MESSENGER_PORT (8085),
  DEMO_TELEGRAM_PORT (8082), DEMO_OKDESK_PORT (8083), DEMO_DIR (target/demo: logs and PID files),
  NATS_URL (nats://127.0.0.1:4222)
Runs scripts/dev-deps.sh first (Postgres and NATS must run locally).
EOF
}

once=0
build=1
cmd=run
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --once) once=1 ;;
    --skip-build) build=0 ;;
    stop) cmd=stop ;;
    status) cmd=status ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
DEMO_DIR=${DEMO_DIR:-$TARGET_DIR/demo}
SANDBOX_PORT=${DEMO_SANDBOX_PORT:-9000}
VK_PORT=${DEMO_VK_PORT:-8081}
AMO_PORT=${DEMO_AMOCRM_PORT:-8084}
SANDBOX_URL=http://127.0.0.1:$SANDBOX_PORT
VK_URL=http://127.0.0.1:$VK_PORT
AMO_URL=http://127.0.0.1:$AMO_PORT
MSG_PORT=${DEMO_MESSENGER_PORT:-8085}
MSG_URL=http://127.0.0.1:$MSG_PORT
TG_PORT=${DEMO_TELEGRAM_PORT:-8082}
TG_URL=http://127.0.0.1:$TG_PORT
OK_PORT=${DEMO_OKDESK_PORT:-8083}
OK_URL=http://127.0.0.1:$OK_PORT
DEMO_NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
PG_SERVER=postgres://postgres@127.0.0.1:5432
DEMO_DB=gateway_demo

VK_GROUP_ID=227000001
VK_SECRET=demo-secret-123
VK_CONFIRMATION=d3m0c0nf
VK_CALLBACK_ID=demo-vk-callback-7f3a9c21
CW_WEBHOOK_ID=demo-chatwoot-hook-91e2b4d8
USER_ID=1001
USER_TEXT="Добрый день! Подскажите, пожалуйста, когда привезут мой заказ №4512?"
AGENT_TEXT="Здравствуйте, Иван! Заказ №4512 передан в доставку, курьер привезёт его завтра до 18:00."

AMO_WEBHOOK_TOKEN=demo-amo-hook-5c1e9a7f
AMO_LEAD_ID=31337

# The sandbox's Telegram: its default bot token, the operators' forum supergroup, a customer
TG_TOKEN=7000000001:AAF-sandbox-test-token
TG_GROUP_ID=-1001000000001
TG_CUSTOMER_ID=5000001
TG_CUSTOMER_TEXT="Здравствуйте!"
TG_OPERATOR_TEXT="Добрый день! Чем помочь?"

# The sandbox's Okdesk: its default API token; the webhook URL's secret part (at least 16
# characters); a person who uses the bot's helpdesk, and what she types
OKDESK_TOKEN=okdesk-test-token
OK_WEBHOOK_TOKEN=demo-okdesk-hook-3b8e1f6a
OK_PERSON_ID=5000002
OK_PERSON_NAME="Смирнова Мария Сергеевна"
OK_PERSON_PHONE="+7 916 765-43-21"
OK_ISSUE_TEXT="Не печатает принтер в бухгалтерии. Горит красная лампа, замена картриджа не помогла."

PROCS=(sandbox vk-connector amocrm-sync messenger-api telegram-bot okdesk-bridge)

pid_of() {
  local f=$DEMO_DIR/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  # only a process of ours: alive and running that binary
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -qa "$1" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

stop_one() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$name ($pid) did not stop on SIGTERM within 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    info "stopped $name (pid $pid)"
  fi
  rm -f "$DEMO_DIR/$name.pid"
}

stop_all() {
  local p
  for ((p = ${#PROCS[@]} - 1; p >= 0; p--)); do stop_one "${PROCS[p]}"; done
}

if [[ $cmd == stop ]]; then
  log "stopping the demo"
  stop_all
  info "database $DEMO_DB is kept; drop it with: psql $PG_SERVER/postgres -c 'DROP DATABASE $DEMO_DB WITH (FORCE)'"
  exit 0
fi
if [[ $cmd == status ]]; then
  for name in "${PROCS[@]}"; do
    if pid=$(pid_of "$name"); then info "$name: running, pid $pid, log $DEMO_DIR/$name.log"; else info "$name: not running"; fi
  done
  pid_of vk-connector >/dev/null && exec "$REPO_ROOT/scripts/verify.sh" --local
  exit 0
fi

# ---------------------------------------------------------------- helpers
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_log_tail() {
  local name=$1
  if [[ -s $DEMO_DIR/$name.log ]]; then
    printf '\n--- last lines of %s ---\n' "$DEMO_DIR/$name.log" >&2
    tail -n 40 "$DEMO_DIR/$name.log" >&2
  fi
}

finished=0
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && $finished -eq 0 ]]; then
    warn "the demo failed (exit $rc)"
    local name
    for name in "${PROCS[@]}"; do show_log_tail "$name"; done
    log "stopping the demo processes (logs stay in $DEMO_DIR)"
    stop_all
  elif [[ $once -eq 1 ]]; then
    log "--once: stopping the demo processes"
    stop_all
  fi
}
trap on_exit EXIT

# alive NAME — the process this run started is still running (by the PID it recorded; the
# command-line check of pid_of would race with the exec right after the start)
alive() { [[ -f $DEMO_DIR/$1.pid ]] && kill -0 "$(cat "$DEMO_DIR/$1.pid")" 2>/dev/null; }

# poll SECONDS DESCRIPTION PROCESS COMMAND... — like wait_until, but gives up as soon as
# PROCESS has died
poll() {
  local timeout=$1 what=$2 proc=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    alive "$proc" || die "$proc exited while waiting for $what"
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

# JSON list from a sandbox answer: a bare array, or Chatwoot's {"payload": […]} / {"data": …}
JQ_ITEMS='def items: if type == "array" then .
  elif type == "object" then (.payload // .data.payload // .data // .conversations // .messages // [])
  else [] end;'

sandbox_get() { curl -fsS --max-time 5 "$SANDBOX_URL$1"; }

conversation_id() {
  sandbox_get /_sandbox/chatwoot/conversations 2>/dev/null |
    jq -er "$JQ_ITEMS [items[] | (.id // .display_id)] | first // empty"
}

conversation_contact() {
  sandbox_get /_sandbox/chatwoot/conversations 2>/dev/null |
    jq -r --argjson id "$1" "$JQ_ITEMS [items[] | select(.id == \$id) | .meta.sender.name // empty] | first // \"?\""
}

chatwoot_message() {
  sandbox_get "/_sandbox/chatwoot/conversations/$1/messages" 2>/dev/null |
    jq -ec --arg t "$USER_TEXT" "$JQ_ITEMS [items[] | select((.content // \"\") | contains(\$t))] | first // empty"
}

vk_sent_reply() {
  sandbox_get /_sandbox/vk/sent 2>/dev/null |
    jq -ec --arg t "$AGENT_TEXT" "$JQ_ITEMS [items[] | select((.message // \"\") | contains(\$t))] | first // empty"
}

# Deletes the demo's own JetStream streams (DEMO_EVENTS, DEMO_COMMANDS, with their consumers)
# so that every run starts as fresh as its database and its sandbox: otherwise the streams'
# duplicate window would swallow a new run's events whose ids repeat the last run's (the
# sandbox numbers its messages from 1 each time). Speaks the NATS text protocol directly.
reset_demo_streams() {
  local hp=${DEMO_NATS_URL%%,*}
  hp=${hp#*://}
  hp=${hp##*@}
  hp=${hp%%/*}
  [[ $hp == *:* ]] || hp="$hp:4222"
  python3 - "${hp%:*}" "${hp##*:}" DEMO_EVENTS DEMO_COMMANDS <<'PY'
import json, socket, sys
host, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sock = socket.create_connection((host, port), timeout=5)
rd = sock.makefile("rb")
rd.readline()  # INFO
sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"demo-reset"}\r\nSUB _INBOX.demo_reset 1\r\n')
for name in names:
    sock.sendall(f"PUB $JS.API.STREAM.DELETE.{name} _INBOX.demo_reset 0\r\n\r\n".encode())
    while True:
        line = rd.readline()
        if not line:
            sys.exit("NATS closed the connection")
        if line.startswith(b"PING"):
            sock.sendall(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            sys.exit(line.decode().strip())
        elif line.startswith(b"MSG"):
            size = int(line.split()[-1])
            reply = json.loads(rd.read(size + 2)[:size])
            if reply.get("success"):
                print(f"    deleted stream {name} of an earlier demo run")
            elif reply.get("error", {}).get("err_code") != 10059:  # 10059: stream not found
                print(f"    stream {name}: {reply.get('error')}")
            break
PY
}

# ---------------------------------------------------------------- 0. prerequisites
"$REPO_ROOT/scripts/dev-deps.sh"
have jq || apt_install jq
mkdir -p "$DEMO_DIR"
stop_all

for port in "$SANDBOX_PORT" "$VK_PORT" "$AMO_PORT" "$MSG_PORT" "$TG_PORT" "$OK_PORT"; do
  if port_busy "$port"; then
    die "127.0.0.1:$port is already in use by another program; free it or set DEMO_SANDBOX_PORT / DEMO_VK_PORT / DEMO_AMOCRM_PORT / DEMO_MESSENGER_PORT / DEMO_TELEGRAM_PORT / DEMO_OKDESK_PORT"
  fi
done

cd "$REPO_ROOT"
if [[ $build -eq 1 ]]; then
  log "building vk-connector, amocrm-sync, messenger-api, telegram-bot, okdesk-bridge and sandbox (cargo build; the first build takes a few minutes)"
  cargo build --bin vk-connector --bin amocrm-sync --bin sandbox --bin messenger-api --bin telegram-bot \
    --bin okdesk-bridge
fi
VK_BIN=$TARGET_DIR/debug/vk-connector
AMO_BIN=$TARGET_DIR/debug/amocrm-sync
SANDBOX_BIN=$TARGET_DIR/debug/sandbox
MSG_BIN=$TARGET_DIR/debug/messenger-api
TG_BIN=$TARGET_DIR/debug/telegram-bot
OK_BIN=$TARGET_DIR/debug/okdesk-bridge
[[ -x $VK_BIN && -x $AMO_BIN && -x $SANDBOX_BIN && -x $MSG_BIN && -x $TG_BIN && -x $OK_BIN ]] || die "binaries not found in $TARGET_DIR/debug (run without --skip-build)"

log "database $DEMO_DB: dropped and created afresh"
PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$PG_SERVER/postgres" \
  -c "DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE)" -c "CREATE DATABASE $DEMO_DB" >/dev/null
# As in production, where deploy/postgres/init.sql creates the schema for the service's role.
psql -X -q -v ON_ERROR_STOP=1 "$PG_SERVER/$DEMO_DB" -c 'CREATE SCHEMA IF NOT EXISTS vk' -c 'CREATE SCHEMA IF NOT EXISTS amocrm' \
  -c 'CREATE SCHEMA IF NOT EXISTS messenger' -c 'CREATE SCHEMA IF NOT EXISTS telegram' \
  -c 'CREATE SCHEMA IF NOT EXISTS okdesk' >/dev/null

reset_demo_streams || warn "could not reset the demo's NATS streams; a run right after another may see duplicates"

# ---------------------------------------------------------------- 1. sandbox
log "starting the sandbox (fake VK + Chatwoot + amoCRM + Telegram + Okdesk) on $SANDBOX_URL"
(
  # run where no .env of the repository is picked up; survive the terminal closing
  cd "$DEMO_DIR"
  trap '' HUP
  exec env RUST_LOG="${RUST_LOG:-info}" "$SANDBOX_BIN" \
    --listen "127.0.0.1:$SANDBOX_PORT" \
    --vk-group-id "$VK_GROUP_ID" \
    --chatwoot-webhook-url "$VK_URL/chatwoot/webhook/$CW_WEBHOOK_ID" \
    --telegram-bot-token "$TG_TOKEN" \
    --telegram-group-id="$TG_GROUP_ID" \
    --okdesk-api-token "$OKDESK_TOKEN" \
    </dev/null >"$DEMO_DIR/sandbox.log" 2>&1
) &
echo $! >"$DEMO_DIR/sandbox.pid"
poll 30 "the sandbox to answer" sandbox sandbox_get /_sandbox/vk/sent

# ---------------------------------------------------------------- 2. vk-connector
log "starting vk-connector on $VK_URL"
(
  cd "$DEMO_DIR"
  trap '' HUP
  exec env -u CHATWOOT_WEBHOOK_SECRET -u OTEL_EXPORTER_OTLP_ENDPOINT \
    HOST=127.0.0.1 \
    PORT="$VK_PORT" \
    DATABASE_URL="$PG_SERVER/$DEMO_DB" \
    NATS_URL="$DEMO_NATS_URL" \
    NATS_SUBJECT_PREFIX=demo \
    LOG_FORMAT=pretty \
    LOG_LEVEL="${LOG_LEVEL:-info}" \
    VK_GROUP_ID="$VK_GROUP_ID" \
    VK_ACCESS_TOKEN=vk-test-token \
    VK_SECRET="$VK_SECRET" \
    VK_CONFIRMATION="$VK_CONFIRMATION" \
    VK_API_VERSION=5.199 \
    VK_CALLBACK_ID="$VK_CALLBACK_ID" \
    VK_API_URL="$SANDBOX_URL/vk/method" \
    VK_LONG_POLL=false \
    CHATWOOT_BASE_URL="$SANDBOX_URL/chatwoot" \
    CHATWOOT_API_ACCESS_TOKEN=cw-test-token \
    CHATWOOT_ACCOUNT_ID=1 \
    CHATWOOT_INBOX_ID=1 \
    CHATWOOT_WEBHOOK_ID_VK="$CW_WEBHOOK_ID" \
    RECONCILE_INTERVAL_SECS=60 \
    "$VK_BIN" serve </dev/null >"$DEMO_DIR/vk-connector.log" 2>&1
) &
echo $! >"$DEMO_DIR/vk-connector.pid"
poll 90 "vk-connector /ready" vk-connector curl -fsS --max-time 3 -o /dev/null "$VK_URL/ready"
info "ready: $(curl -sS --max-time 3 "$VK_URL/ready")"

log "starting amocrm-sync on $AMO_URL"
(
  cd "$DEMO_DIR"
  trap '' HUP
  exec env -u OTEL_EXPORTER_OTLP_ENDPOINT \
    HOST=127.0.0.1 \
    PORT="$AMO_PORT" \
    DATABASE_URL="$PG_SERVER/$DEMO_DB" \
    NATS_URL="$DEMO_NATS_URL" \
    NATS_SUBJECT_PREFIX=demo \
    LOG_FORMAT=pretty \
    LOG_LEVEL="${LOG_LEVEL:-info}" \
    AMOCRM_DOMAIN=sandbox.amocrm.ru \
    AMOCRM_BASE_URL="$SANDBOX_URL/amocrm" \
    AMOCRM_CLIENT_ID=sandbox-amo-client-id \
    AMOCRM_CLIENT_SECRET=sandbox-amo-client-secret \
    AMOCRM_REDIRECT_URI="$AMO_URL/api/auth/amo/callback" \
    AMOCRM_WEBHOOK_TOKEN="$AMO_WEBHOOK_TOKEN" \
    "$AMO_BIN" serve </dev/null >"$DEMO_DIR/amocrm-sync.log" 2>&1
) &
echo $! >"$DEMO_DIR/amocrm-sync.pid"
poll 90 "amocrm-sync /ready" amocrm-sync curl -fsS --max-time 3 -o /dev/null "$AMO_URL/ready"
info "ready: $(curl -sS --max-time 3 "$AMO_URL/ready")"

log "starting messenger-api on $MSG_URL"
(
  cd "$DEMO_DIR"
  trap '' HUP
  exec env -u OTEL_EXPORTER_OTLP_ENDPOINT -u Jwt__Secret \
    HOST=127.0.0.1 \
    PORT="$MSG_PORT" \
    DATABASE_URL="$PG_SERVER/$DEMO_DB" \
    NATS_URL="$DEMO_NATS_URL" \
    NATS_SUBJECT_PREFIX=demo \
    LOG_FORMAT=pretty \
    LOG_LEVEL="${LOG_LEVEL:-info}" \
    JWT_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
    MESSENGER_FILES_DIR="$DEMO_DIR/messenger-files" \
    "$MSG_BIN" serve </dev/null >"$DEMO_DIR/messenger-api.log" 2>&1
) &
echo $! >"$DEMO_DIR/messenger-api.pid"
poll 90 "messenger-api /ready" messenger-api curl -fsS --max-time 3 -o /dev/null "$MSG_URL/ready"
info "ready: $(curl -sS --max-time 3 "$MSG_URL/ready")"

log "starting telegram-bot on $TG_URL (long polling $SANDBOX_URL/telegram; Okdesk helpdesk on)"
(
  cd "$DEMO_DIR"
  trap '' HUP
  exec env -u OTEL_EXPORTER_OTLP_ENDPOINT -u BOT_EMOJI_ID -u BOT_DEV_ID -u WEBHOOK_URL -u WEBHOOK_PATH \
    -u WEBHOOK_SECRET \
    HOST=127.0.0.1 \
    PORT="$TG_PORT" \
    DATABASE_URL="$PG_SERVER/$DEMO_DB" \
    NATS_URL="$DEMO_NATS_URL" \
    NATS_SUBJECT_PREFIX=demo \
    LOG_FORMAT=pretty \
    LOG_LEVEL="${LOG_LEVEL:-info}" \
    BOT_TOKEN="$TG_TOKEN" \
    BOT_GROUP_ID="$TG_GROUP_ID" \
    TELEGRAM_API_URL="$SANDBOX_URL/telegram" \
    WEBHOOK_ENABLED=false \
    TELEGRAM_POLL_TIMEOUT_SECS=5 \
    OKDESK_ENABLED=true \
    "$TG_BIN" serve </dev/null >"$DEMO_DIR/telegram-bot.log" 2>&1
) &
echo $! >"$DEMO_DIR/telegram-bot.pid"
poll 90 "telegram-bot /ready" telegram-bot curl -fsS --max-time 3 -o /dev/null "$TG_URL/ready"
info "ready: $(curl -sS --max-time 3 "$TG_URL/ready")"

# ---------------------------------------------------------------- 3. the conversation
log "1/5  VK: user Иван Петров (id $USER_ID) exists in the fake VK"
curl -fsS --max-time 5 -X POST -H 'Content-Type: application/json' \
  --data "{\"id\":$USER_ID,\"first_name\":\"Иван\",\"last_name\":\"Петров\"}" \
  "$SANDBOX_URL/_sandbox/vk/users" >/dev/null

log "2/5  VK -> gateway: Callback API message_new"
event_id=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
payload=$(jq -nc \
  --arg event_id "$event_id" --arg secret "$VK_SECRET" --arg text "$USER_TEXT" \
  --argjson group "$VK_GROUP_ID" --argjson user "$USER_ID" --argjson date "$(date +%s)" '
  {type: "message_new", event_id: $event_id, v: "5.199", group_id: $group, secret: $secret,
   object: {
     message: {date: $date, from_id: $user, id: 1, out: 0, peer_id: $user, text: $text,
               conversation_message_id: 1, attachments: [], important: false, is_hidden: false,
               fwd_messages: [], random_id: 0},
     client_info: {button_actions: ["text"], keyboard: true, inline_keyboard: true,
                   carousel: true, lang_id: 0}}}')
info "POST $VK_URL/vk/callback/$VK_CALLBACK_ID"
info "  event_id $event_id, from_id $USER_ID: \"$USER_TEXT\""
answer=$(curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' --data "$payload" \
  -w '\n%{http_code}' "$VK_URL/vk/callback/$VK_CALLBACK_ID")
code=${answer##*$'\n'}
answer=${answer%$'\n'*}
info "  answer: HTTP $code, body \"$answer\""
[[ $code == 200 && $answer == ok ]] || die "VK Callback answer should be HTTP 200 with body 'ok'"

log "3/5  gateway -> Chatwoot: the message appears in a conversation"
conv=""
find_conversation() { conv=$(conversation_id) && [[ -n $conv ]]; }
poll 30 "a Chatwoot conversation" vk-connector find_conversation
msg=""
find_message() { msg=$(chatwoot_message "$conv") && [[ -n $msg ]]; }
poll 30 "the message in Chatwoot conversation $conv" vk-connector find_message
info "conversation $conv in inbox 1, contact: $(conversation_contact "$conv" || echo '?')"
info "  $(jq -r '"message \(.id // "?"), \(.message_type | if . == 0 then "incoming" elif . == 1 then "outgoing" else tostring end): \"\(.content)\""' <<<"$msg")"

log "4/5  Chatwoot: an agent replies (the sandbox fires the message_created webhook)"
info "  \"$AGENT_TEXT\""
curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' \
  --data "$(jq -nc --arg c "$AGENT_TEXT" '{content: $c, private: false}')" \
  "$SANDBOX_URL/_sandbox/chatwoot/conversations/$conv/agent_reply" >/dev/null

log "5/5  gateway -> VK: messages.send to the user"
sent=""
find_sent() { sent=$(vk_sent_reply) && [[ -n $sent ]]; }
poll 30 "the reply in VK messages.send" vk-connector find_sent
info "  $(jq -r '"peer_id \(.peer_id), random_id \(.random_id), message_id \(.message_id // "?"): \"\(.message)\""' <<<"$sent")"

# ---------------------------------------------------------------- 4. an amoCRM lead
log "amoCRM 1/2  amoCRM -> gateway: form-encoded leads[add] webhook, as amoCRM posts it"
amo_body=$(python3 - "$AMO_LEAD_ID" "$(date +%s)" <<'PY'
import sys, urllib.parse
lead, now = sys.argv[1], sys.argv[2]
p = f"leads[add][0]"
pairs = [
    (f"{p}[id]", lead), (f"{p}[name]", "Квартира на Невском, 3 комн. 🏠"), (f"{p}[status_id]", "1"),
    (f"{p}[price]", "12500000"), (f"{p}[responsible_user_id]", "504141"), (f"{p}[pipeline_id]", "7331"),
    (f"{p}[date_create]", str(int(now) - 60)), (f"{p}[last_modified]", now), (f"{p}[account_id]", "29085431"),
]
for i, (fid, name, value) in enumerate([
    (123458, "utm_source", "yandex"), (123459, "utm_medium", "cpc"), (123460, "utm_campaign", "spb-novostroyki"),
    (123463, "Стоимость объекта", "12 500 000"), (123464, "Комиссия", "375000,50"),
]):
    f = f"{p}[custom_fields][{i}]"
    pairs += [(f"{f}[id]", str(fid)), (f"{f}[name]", name), (f"{f}[values][0][value]", value)]
pairs += [("account[subdomain]", "sandbox"), ("account[id]", "29085431")]
print(urllib.parse.urlencode(pairs))
PY
)
info "POST $AMO_URL/api/webhooks/amo/$AMO_WEBHOOK_TOKEN"
info "  ${amo_body:0:150}…"
answer=$(curl -sS --max-time 10 -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
  --data "$amo_body" -w '\n%{http_code}' "$AMO_URL/api/webhooks/amo/$AMO_WEBHOOK_TOKEN")
code=${answer##*$'\n'}
answer=${answer%$'\n'*}
info "  answer: HTTP $code, $answer"
[[ $code == 200 ]] || die "the amoCRM webhook should be answered 200"

log "amoCRM 2/2  gateway -> Postgres: the lead in amocrm.leads"
lead_row() {
  psql -X -q -At "$PG_SERVER/$DEMO_DB" -c \
    "SELECT id, name, status, utm_source, utm_campaign, object_price, commission FROM amocrm.leads WHERE id = $AMO_LEAD_ID" 2>/dev/null
}
row=""
find_row() { row=$(lead_row) && [[ -n $row ]]; }
poll 30 "lead $AMO_LEAD_ID in amocrm.leads" amocrm-sync find_row
psql -X "$PG_SERVER/$DEMO_DB" -c \
  "SELECT id, name, status, utm_source, utm_campaign, object_price, commission, updated_at FROM amocrm.leads WHERE id = $AMO_LEAD_ID" |
  sed 's/^/    /' >&2

# ---------------------------------------------------------------- 5. the own messenger
msg_cli() {
  env -u Jwt__Secret DATABASE_URL="$PG_SERVER/$DEMO_DB" LOG_FORMAT=pretty LOG_LEVEL=warn "$MSG_BIN" "$@"
}
msg_api() { # METHOD PATH TOKEN|"" [JSON]
  local args=(-sS --max-time 10 -X "$1" -H 'Content-Type: application/json')
  [[ -n $3 ]] && args+=(-H "Authorization: Bearer $3")
  [[ $# -ge 4 ]] && args+=(--data "$4")
  curl "${args[@]}" "$MSG_URL$2"
}
log "messenger 1/5  messenger-api admin create / invite create (the CLI; nothing is hard-coded)"
admin_out=$(msg_cli admin create --phone +79990000001 --display-name "Администратор")
info "  $(head -n1 <<<"$admin_out")"
invites=$(msg_cli invite create --count 2 2>/dev/null)
info "  invite codes: $(tr '\n' ' ' <<<"$invites")"

log "messenger 2/5  two users register with the codes (POST /api/auth/register)"
msg_register() { # phone name code
  msg_api POST /api/auth/register "" \
    "$(jq -nc --arg p "$1" --arg n "$2" --arg c "$3" '{phone:$p, password:"demo-password-1", displayName:$n, inviteCode:$c}')"
}
alice=$(msg_register +79990000002 "Алиса" "$(sed -n 1p <<<"$invites")")
bob=$(msg_register +79990000003 "Борис" "$(sed -n 2p <<<"$invites")")
bob_id=$(jq -er .user.id <<<"$bob") || die "registration failed: $bob"
info "  Алиса $(jq -r .user.id <<<"$alice"), Борис $bob_id"

log "messenger 3/5  Алиса logs in (POST /api/auth/login) and opens a private chat with Борис"
login=$(msg_api POST /api/auth/login "" '{"phone":"+79990000002","password":"demo-password-1"}')
alice_token=$(jq -er .accessToken <<<"$login") || die "login failed: $login"
info "  accessToken ${alice_token:0:24}…, expiresIn $(jq -r .expiresIn <<<"$login") s, refreshToken issued"
chat=$(msg_api POST /api/chats "$alice_token" "$(jq -nc --arg u "$bob_id" '{type:"private", userId:$u}')")
chat_id=$(jq -er .id <<<"$chat") || die "chat not created: $chat"
info "  chat $chat_id"

log "messenger 4/5  Борис connects to the hub /hubs/chat with @microsoft/signalr (Node)"
NODE_DIR=$REPO_ROOT/services/messenger-api/tests/node
if ! have node || ! have npm; then apt_install nodejs npm; fi
[[ -d $NODE_DIR/node_modules/@microsoft/signalr ]] || (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
bob_token=$(jq -r .accessToken <<<"$bob")
node "$NODE_DIR/hub-client.js" "$MSG_URL" "$bob_token" 30 >"$DEMO_DIR/hub-client.out" 2>&1 &
hub_client=$!
hub_connected() { grep -q '^connected' "$DEMO_DIR/hub-client.out"; }
poll 30 "the hub client to connect" messenger-api hub_connected
info "  $(head -n1 "$DEMO_DIR/hub-client.out")"

log "messenger 5/5  Алиса sends (POST /api/messages); the hub pushes ReceiveMessage to Борис"
MSG_TEXT="Борис, привет! Это сообщение пришло через хаб."
sent=$(msg_api POST /api/messages "$alice_token" "$(jq -nc --arg c "$chat_id" --arg t "$MSG_TEXT" '{chatId:$c, text:$t}')")
info "  stored: message $(jq -r .id <<<"$sent")"
wait "$hub_client" || die "no ReceiveMessage at Борис: $(cat "$DEMO_DIR/hub-client.out")"
pushed=$(grep '"ReceiveMessage"' "$DEMO_DIR/hub-client.out")
info "  Борис got: $(jq -c '.args[0] | {id, senderName, text}' <<<"$pushed")"
[[ $(jq -r '.args[0].text' <<<"$pushed") == "$MSG_TEXT" ]] || die "the pushed message is not the one sent"

# ---------------------------------------------------------------- 6. the Telegram support bot
sandbox_post() { # PATH JSON
  curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' --data "$2" "$SANDBOX_URL$1"
}
# JSON list of a sandbox answer: a bare array, or {"topics"|"messages"|"result"|"items": […]}
JQ_TG_ITEMS='def items: if type == "array" then .
  elif type == "object" then (.topics // .messages // .result // .items // [])
  else [] end;'
tg_topics() { sandbox_get /_sandbox/telegram/topics 2>/dev/null | jq -ec "$JQ_TG_ITEMS [items[] | select(.deleted != true)]"; }
# tg_message CHAT TEXT [THREAD] — the first message of the fake chat CHAT with TEXT (in THREAD)
tg_message() {
  sandbox_get "/_sandbox/telegram/chats/$1/messages" 2>/dev/null |
    jq -ec --arg t "$2" --arg thread "${3:-}" "$JQ_TG_ITEMS"' [items[]
      | select(((.text // .caption // "") | contains($t))
               and ($thread == "" or ((.message_thread_id // "") | tostring) == $thread))] | first // empty'
}

log "telegram 1/4  customer Ivan ($TG_CUSTOMER_ID) writes to the bot (a private-chat update in the fake Bot API)"
info "  \"$TG_CUSTOMER_TEXT\""
answer=$(sandbox_post /_sandbox/telegram/updates "$(jq -nc --argjson u "$TG_CUSTOMER_ID" --arg t "$TG_CUSTOMER_TEXT" '
  {message: {chat: {id: $u, type: "private", first_name: "Ivan"},
             from: {id: $u, is_bot: false, first_name: "Ivan", language_code: "ru"},
             text: $t}}')") || die "the sandbox refused the update"
info "  queued for getUpdates: $(jq -c 'if type == "object" and .update_id then {update_id} else . end' <<<"$answer" 2>/dev/null || echo "$answer")"

log "telegram 2/4  gateway -> Telegram: createForumTopic in the operators' group $TG_GROUP_ID"
topics=""
find_topic() { topics=$(tg_topics) && [[ $(jq length <<<"$topics") -ge 1 ]]; }
poll 30 "a forum topic in the operators' group" telegram-bot find_topic
[[ $(jq length <<<"$topics") -eq 1 ]] || die "one customer should get one topic, the sandbox has: $topics"
thread=$(jq -r '.[0] | .message_thread_id // .thread_id // .id' <<<"$topics")
[[ $thread =~ ^[0-9]+$ ]] || die "the topic has no message_thread_id: $topics"
info "  topic $thread: \"$(jq -r '.[0] | .name // .title // "?"' <<<"$topics")\"$(jq -r '.[0] | if .icon_custom_emoji_id then ", icon \(.icon_custom_emoji_id)" else "" end' <<<"$topics")"

log "telegram 3/4  gateway -> Telegram: the customer's message in the topic"
tgmsg=""
find_tg_in_topic() { tgmsg=$(tg_message "$TG_GROUP_ID" "$TG_CUSTOMER_TEXT" "$thread") && [[ -n $tgmsg ]]; }
poll 30 "the customer's message in topic $thread" telegram-bot find_tg_in_topic
info "  chat $TG_GROUP_ID, topic $thread, message $(jq -r '.message_id // "?"' <<<"$tgmsg"): \"$(jq -r '.text // .caption' <<<"$tgmsg")\""

log "telegram 4/4  operator Olga answers in the topic; gateway -> Telegram: the answer in the customer's chat"
info "  \"$TG_OPERATOR_TEXT\""
sandbox_post /_sandbox/telegram/updates "$(jq -nc --argjson g "$TG_GROUP_ID" --argjson th "$thread" --arg t "$TG_OPERATOR_TEXT" '
  {message: {chat: {id: $g, type: "supergroup", title: "Support", is_forum: true},
             from: {id: 6000001, is_bot: false, first_name: "Olga"},
             message_thread_id: $th, is_topic_message: true, text: $t}}')" >/dev/null ||
  die "the sandbox refused the update"
find_tg_answer() { tgmsg=$(tg_message "$TG_CUSTOMER_ID" "$TG_OPERATOR_TEXT") && [[ -n $tgmsg ]]; }
poll 30 "the operator's answer in the customer's chat $TG_CUSTOMER_ID" telegram-bot find_tg_answer
info "  chat $TG_CUSTOMER_ID, message $(jq -r '.message_id // "?"' <<<"$tgmsg"): \"$(jq -r '.text // .caption' <<<"$tgmsg")\""

# ---------------------------------------------------------------- 7. the Okdesk helpdesk in Telegram
log "starting okdesk-bridge on $OK_URL (Okdesk API $SANDBOX_URL/okdesk/api/v1)"
(
  cd "$DEMO_DIR"
  trap '' HUP
  exec env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OKDESK_WEBHOOK_SECRET -u OKDESK_POLL_INTERVAL_SECS \
    HOST=127.0.0.1 \
    PORT="$OK_PORT" \
    DATABASE_URL="$PG_SERVER/$DEMO_DB" \
    NATS_URL="$DEMO_NATS_URL" \
    NATS_SUBJECT_PREFIX=demo \
    LOG_FORMAT=pretty \
    LOG_LEVEL="${LOG_LEVEL:-info}" \
    OKDESK_API_URL="$SANDBOX_URL/okdesk/api/v1" \
    OKDESK_API_TOKEN="$OKDESK_TOKEN" \
    OKDESK_WEBHOOK_TOKEN="$OK_WEBHOOK_TOKEN" \
    OKDESK_INN_PARAMETER_CODE=inn \
    "$OK_BIN" serve </dev/null >"$DEMO_DIR/okdesk-bridge.log" 2>&1
) &
echo $! >"$DEMO_DIR/okdesk-bridge.pid"
poll 90 "okdesk-bridge /ready" okdesk-bridge curl -fsS --max-time 3 -o /dev/null "$OK_URL/ready"
info "ready: $(curl -sS --max-time 3 "$OK_URL/ready")"
OK_WEBHOOK_URL=$OK_URL/okdesk/webhook/$OK_WEBHOOK_TOKEN
sandbox_post /_sandbox/okdesk/webhook "$(jq -nc --arg u "$OK_WEBHOOK_URL" '{url: $u}')" >/dev/null ||
  die "the sandbox refused the Okdesk webhook URL"
info "the sandbox's Okdesk posts its webhooks to $OK_WEBHOOK_URL (POST /_sandbox/okdesk/webhook)"
info "telegram-bot (pid $(cat "$DEMO_DIR/telegram-bot.pid")) runs with OKDESK_ENABLED=true: the helpdesk answers private chats, free text still goes to the operators"

# tg_bot_reply CHAT AFTER TEXT — the first message the bot sent into CHAT after message AFTER
# with TEXT in it
tg_bot_reply() {
  sandbox_get "/_sandbox/telegram/chats/$1/messages" 2>/dev/null |
    jq -ec --argjson after "$2" --arg t "$3" "$JQ_TG_ITEMS"' [items[]
      | select(.from.is_bot == true and .message_id > $after and ((.text // "") | contains($t)))]
      | first // empty'
}
# tg_last_id CHAT — the id of the chat's newest message (0 when there is none)
tg_last_id() {
  sandbox_get "/_sandbox/telegram/chats/$1/messages" 2>/dev/null |
    jq -r "$JQ_TG_ITEMS"' [items[].message_id] | max // 0'
}
# person_says TEXT NEEDLE — Мария sends TEXT to the bot (a private-chat update); waits for the
# bot's answer with NEEDLE and prints both. Sets sent_id (her message) and reply (the answer).
sent_id=0
reply=""
person_says() {
  local pushed
  info "Мария: \"$1\""
  pushed=$(sandbox_post /_sandbox/telegram/updates "$(jq -nc --argjson u "$OK_PERSON_ID" --arg t "$1" '
    {message: {chat: {id: $u, type: "private", first_name: "Мария", last_name: "Смирнова"},
               from: {id: $u, is_bot: false, first_name: "Мария", last_name: "Смирнова", language_code: "ru"},
               text: $t}}')") || die "the sandbox refused the update"
  sent_id=$(jq -er .message_id <<<"$pushed") || die "the sandbox answered no message_id: $pushed"
  wait_bot_reply "$sent_id" "$2"
}
# wait_bot_reply AFTER NEEDLE — waits for the bot's message to Мария with NEEDLE after message
# AFTER and prints it
wait_bot_reply() {
  local after=$1 needle=$2
  find_bot_reply() { reply=$(tg_bot_reply "$OK_PERSON_ID" "$after" "$needle") && [[ -n $reply ]]; }
  poll 30 "the bot's answer «$needle» to $OK_PERSON_ID" telegram-bot find_bot_reply
  info "  bot: \"$(jq -r '.text | gsub("\n"; " ⏎ ")' <<<"$reply")\""
}

log "okdesk 1/6  Мария ($OK_PERSON_ID) sends /register to the bot"
person_says "/register" "частное лицо или сотрудник"

log "okdesk 2/6  she presses «👤 Частное лицо» (a reply-keyboard button: Telegram sends its label as text), then types her full name and phone number"
person_says "👤 Частное лицо" "Как вас зовут"
person_says "$OK_PERSON_NAME" "номер телефона"
person_says "$OK_PERSON_PHONE" "Регистрация отправлена"
phone_sent=$sent_id

log "okdesk 3/6  cmd.okdesk.contact.register -> okdesk-bridge -> an Okdesk contact -> events.okdesk.contact.registered -> the bot"
wait_bot_reply "$phone_sent" "вы зарегистрированы в Okdesk"
contact=$(sandbox_get /_sandbox/okdesk/contacts | jq -ec '[.[] | {id, name, mobile_phone, phone}] | first') ||
  die "no contact in the sandbox's Okdesk"
info "  Okdesk contact $(jq -r '"\(.id): \(.name), phone \(if .mobile_phone != "" then .mobile_phone else .phone end)"' <<<"$contact")"

log "okdesk 4/6  she presses «📝 Создать заявку» and describes the problem in one message"
person_says "📝 Создать заявку" "Опишите проблему"
person_says "$OK_ISSUE_TEXT" "поставлена в очередь"
issue_sent=$sent_id

log "okdesk 5/6  cmd.okdesk.issue.create -> okdesk-bridge -> Okdesk POST /issues -> events.okdesk.issue.created -> the bot"
wait_bot_reply "$issue_sent" "создана: http"
issue_id=$(jq -er '.text | capture("№(?<n>[0-9]+) создана") | .n' <<<"$reply") ||
  die "no issue number in the bot's answer: $reply"
issue_link=$(jq -er '.text | capture("создана: (?<u>[^ ]+)") | .u' <<<"$reply") ||
  die "no link in the bot's answer: $reply"
info "  issue number $issue_id, link $issue_link"
issue=$(sandbox_get /_sandbox/okdesk/issues | jq -ec --argjson id "$issue_id" '.[] | select(.id == $id)') ||
  die "issue $issue_id is not in the sandbox's Okdesk"
info "  in Okdesk: \"$(jq -r .title <<<"$issue")\", status $(jq -r .status.code <<<"$issue"), contact $(jq -r .contact.id <<<"$issue")"
[[ $(jq -r .contact.id <<<"$issue") == "$(jq -r .id <<<"$contact")" ]] || die "the issue is not under Мария's contact"

log "okdesk 6/6  an Okdesk engineer sets issue $issue_id to «В работе»; webhook new_ticket_status -> okdesk-bridge -> events.okdesk.issue.status_changed -> the bot"
before=$(tg_last_id "$OK_PERSON_ID")
changed=$(sandbox_post "/_sandbox/okdesk/issues/$issue_id/status" '{"code":"in_progress"}') ||
  die "the sandbox refused the status change"
info "  POST /_sandbox/okdesk/issues/$issue_id/status {\"code\":\"in_progress\"}: $(jq -r '"\(.old_status.name) -> \(.status.name)"' <<<"$changed")"
find_delivery() {
  delivery=$(sandbox_get /_sandbox/okdesk/webhooks 2>/dev/null |
    jq -ec --argjson id "$issue_id" '[.[] | select(.event_type == "new_ticket_status" and .issue_id == $id and .error == null)] | first // empty') &&
    [[ -n $delivery ]]
}
delivery=""
poll 30 "the new_ticket_status webhook delivered to okdesk-bridge" okdesk-bridge find_delivery
info "  webhook $(jq -r '"\(.event_type) for issue \(.issue_id): HTTP \(.status) (attempt \(.attempt))"' <<<"$delivery")"
wait_bot_reply "$before" "Статус заявки №$issue_id"
info "  Мария's chat $OK_PERSON_ID, message $(jq -r .message_id <<<"$reply")"

finished=1
log "the walk-through passed: VK -> Chatwoot -> VK, amoCRM -> Postgres, messenger login -> hub push, Telegram customer -> topic -> customer, Telegram helpdesk -> Okdesk issue -> status back in Telegram"
if [[ $once -eq 1 ]]; then
  exit 0
fi

cat <<EOF

The gateway keeps running:
  vk-connector  pid $(pid_of vk-connector)  $VK_URL          log $DEMO_DIR/vk-connector.log
  amocrm-sync   pid $(pid_of amocrm-sync)  $AMO_URL          log $DEMO_DIR/amocrm-sync.log
  messenger-api pid $(pid_of messenger-api)  $MSG_URL          log $DEMO_DIR/messenger-api.log
  telegram-bot  pid $(pid_of telegram-bot)  $TG_URL          log $DEMO_DIR/telegram-bot.log
  okdesk-bridge pid $(pid_of okdesk-bridge)  $OK_URL          log $DEMO_DIR/okdesk-bridge.log
  sandbox       pid $(pid_of sandbox)  $SANDBOX_URL   log $DEMO_DIR/sandbox.log
Try:
  curl -s $VK_URL/health
  curl -s $VK_URL/metrics | head
  curl -s $SANDBOX_URL/_sandbox/chatwoot/conversations | jq
  curl -s $SANDBOX_URL/_sandbox/vk/sent | jq
  curl -s $AMO_URL/api/webhooks/amo/health
  $MSG_URL/swagger (Swagger UI of the messenger API; Алиса: +79990000002 / demo-password-1)
  psql $PG_SERVER/$DEMO_DB -c 'TABLE amocrm.leads'
  curl -s $SANDBOX_URL/_sandbox/telegram/topics | jq
  curl -s $SANDBOX_URL/_sandbox/telegram/chats/$TG_CUSTOMER_ID/messages | jq
  psql $PG_SERVER/$DEMO_DB -c 'TABLE telegram.topics'
  curl -s $SANDBOX_URL/_sandbox/okdesk/issues | jq
  curl -s $SANDBOX_URL/_sandbox/telegram/chats/$OK_PERSON_ID/messages | jq '.[] | {from: .from.first_name, text}'
  scripts/verify.sh --local
Stop with:
  scripts/demo.sh stop
EOF
