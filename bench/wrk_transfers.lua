-- wrk script: POST /api/v1/wallet/transfer from random signed-in senders to random wallets.
--
-- Why Lua in wrk: the load generator must not be the bottleneck (issue 13); wrk's C event
-- loop costs a few percent of a core where a Python client costs as much as the server.
--
-- The senders file (env WRK_SENDERS) has one "<access token> <wallet number>" per line, as
-- prepared by the bench that runs this. Every request carries a fresh Idempotency-Key and
-- moves 1.00-100.00 to a wallet other than the sender's. WRK_HOT_WALLET, when set, receives
-- every other transfer (the "hot" mix).
--
--   WRK_SENDERS=/tmp/senders.txt wrk -t2 -c32 -d20s -s bench/wrk_transfers.lua http://127.0.0.1:8000

local senders = {}
local counter = 0
local hot = os.getenv("WRK_HOT_WALLET")
local threads = 0

-- Runs in the main state; `thread_id` becomes a global of each thread's own state, so their
-- random sequences and idempotency keys differ.
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local path = os.getenv("WRK_SENDERS") or "senders.txt"
  for line in io.lines(path) do
    local token, number = line:match("^(%S+)%s+(%S+)$")
    if token then
      table.insert(senders, { token = token, number = number })
    end
  end
  if #senders < 2 then
    error("WRK_SENDERS needs at least two senders")
  end
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  counter = counter + 1
  local sender = senders[math.random(#senders)]
  local recipient
  if hot and counter % 2 == 0 and hot ~= sender.number then
    recipient = hot
  else
    repeat
      recipient = senders[math.random(#senders)].number
    until recipient ~= sender.number
  end
  local body = string.format('{"wallet_number":"%s","amount":"%d.00"}', recipient,
    math.random(1, 100))
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. sender.token,
    ["Idempotency-Key"] = string.format("wrk-%d-%d-%d-%d", os.time(), thread_id, counter,
      math.random(1, 2147483647)),
  }
  return wrk.format("POST", "/api/v1/wallet/transfer", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("latency_p50_ms %.2f\n", latency:percentile(50) / 1000))
  io.write(string.format("latency_p99_ms %.2f\n", latency:percentile(99) / 1000))
  io.write(string.format("requests %d\n", summary.requests))
  -- Any answer other than 2xx/3xx (a refused transfer is an error of the run).
  io.write(string.format("errors_status %d\n", summary.errors.status))
end
