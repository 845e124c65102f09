-- wrk script of bench/telegram-bot.sh: Telegram webhook deliveries (POST /telegram/webhook) of a
-- private-chat `message` update, a unique update_id in every request.
--
--   wrk -t2 -c64 -d20s -s bench/telegram-bot.lua http://127.0.0.1:PORT -- \
--       PATH SECRET CUSTOMERS FIRST_USER [publish|ignored]
--
-- update_id = thread * 1e9 + n, message_id = thread * 1e8 + n (n counts the thread's requests), so
-- JetStream stores every one (Nats-Msg-Id tg:<bot>:<update_id>) and the relay sees no message
-- twice; chat.id = from.id = one of CUSTOMERS users from FIRST_USER on. "ignored": chat.id is not
-- the sender's, so the service answers 200 after the same secret check, JSON parse and Message
-- parse, without building or publishing an envelope ("another chat"): the route's ceiling.
-- At the end one JSON line: {"requests","duration_s","req_per_s","errors":{…},"latency_ms":{…}}.

local template = '{"update_id":%d,"message":{"message_id":%d,"date":1764000000,'
  .. '"chat":{"id":%d,"type":"private","first_name":"C"},'
  .. '"from":{"id":%d,"is_bot":false,"first_name":"C","language_code":"ru"},"text":"bench"}}'

local threads = {}
local counter = 0
local path, customers, first_user, ignored, headers

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  path = args[1] or "/telegram/webhook"
  customers = tonumber(args[3] or "1000")
  first_user = tonumber(args[4] or "500000001")
  ignored = (args[5] == "ignored")
  headers = {
    ["Content-Type"] = "application/json",
    ["X-Telegram-Bot-Api-Secret-Token"] = args[2] or "",
  }
end

function request()
  counter = counter + 1
  local user = first_user + (counter * 7 + tid) % customers
  local chat = user
  if ignored then
    chat = user + customers
  end
  local body = string.format(template, tid * 1000000000 + counter, tid * 100000000 + counter, chat, user)
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"req_per_s":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f,"mean":%.3f},"body_bytes":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000,
    -- done() runs in the main script state, where init() did not run: a typical body.
    #string.format(template, 1000000001, 100000001, 500000001, 500000001)))
end
