-- wrk script of bench/okdesk-bridge.sh: Okdesk webhook deliveries (POST
-- /okdesk/webhook/{token}) of a `new_ticket_status` event, a distinct issue id in every request.
--
--   wrk -t2 -c64 -d20s -s bench/okdesk-bridge.lua http://127.0.0.1:PORT -- \
--       PATH CONTACTS FIRST_CONTACT [status|ignored]
--
-- issue.id = thread * 1e9 + n (n counts the thread's requests), sent as a string as Okdesk does,
-- so every request is the first sighting of its issue with a status other than `opened`: the
-- bridge records the issue, publishes events.okdesk.issue.status_changed (key
-- okdesk:issue:<id>:status:1) and answers 200 after the JetStream ack; nothing is deduplicated.
-- contact_id = one of CONTACTS from FIRST_CONTACT on. "ignored": event_type `new_assignee`, which
-- the bridge answers 200 after the token check and the JSON parse, without the database or NATS
-- ("event type not relayed"): the route's ceiling.
-- At the end one JSON line: {"requests","duration_s","req_per_s","errors":{…},"latency_ms":{…}}.

local template = '{"event":{"event_type":"%s","new_status":{"code":"in_progress","name":"В работе"},'
  .. '"old_status":{"code":"opened","name":"Открыта"}},'
  .. '"issue":{"id":"%d","title":"bench","contact_id":"%d"}}'

local threads = {}
local counter = 0
local path, contacts, first_contact, event_type
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  path = args[1] or "/okdesk/webhook/token"
  contacts = tonumber(args[2] or "1000")
  first_contact = tonumber(args[3] or "1")
  event_type = (args[4] == "ignored") and "new_assignee" or "new_ticket_status"
end

function request()
  counter = counter + 1
  local contact = first_contact + (counter * 7 + tid) % contacts
  local body = string.format(template, event_type, tid * 1000000000 + counter, contact)
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
    #string.format(template, "new_ticket_status", 1000000001, 1)))
end
