-- wrk script of bench/run.sh (phase "ingest"): Chatwoot account webhooks (`message_created`,
-- an agent's outgoing reply) posted to vk-connector's POST /chatwoot/webhook/{id}.
--
--   wrk -t2 -c64 -d10s -s bench/chatwoot-webhook.lua http://127.0.0.1:PORT -- \
--       PATH TEMPLATES FIRST_ID
--
-- TEMPLATES: a file of webhook bodies, one per line, exactly as the sandbox Chatwoot delivered
-- them for real agent replies in conversations mapped to VK dialogues (see bench/run.sh), with
-- the message id replaced by the string "__MID__". Every request takes the next template and a
-- new message id (FIRST_ID + thread * 1e8 + n), so the command's idempotency key
-- (chatwoot:<account>:<message id>) is new and JetStream stores every one.
-- Webhook format: https://www.chatwoot.com/hc/user-guide/articles/1677693021-how-to-use-webhooks
-- At the end one JSON line: {"requests","duration_s","req_per_s","errors":{…},"latency_ms":{…}}.

local threads = {}
local counter = 0
local path, first_id
local templates = {}
local headers = { ["Content-Type"] = "application/json" }
local body_bytes = 0

local function load(file)
  local t = {}
  for line in io.lines(file) do
    if #line > 0 then
      table.insert(t, line)
    end
  end
  return t
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  path = args[1]
  templates = load(args[2])
  first_id = tonumber(args[3] or "900000000")
end

function request()
  counter = counter + 1
  local t = templates[(counter % #templates) + 1]
  local mid = first_id + tid * 100000000 + counter
  local body = t:gsub('"__MID__"', tostring(mid))
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"req_per_s":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f,"mean":%.3f}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000))
end
