-- wrk load for coffer's POST /api/v1/transfers/batch: each request BENCH_BATCH_SIZE transfers
-- (mode BENCH_BATCH_MODE, independent by default) from one random signed-in user of
-- BENCH_USERS_FILE to random others, 1.00 to 100.00 each, every item with its own idempotency
-- key. See bench/wrk_common.lua for the rest.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
local size = tonumber(os.getenv("BENCH_BATCH_SIZE") or "100")
local mode = os.getenv("BENCH_BATCH_MODE") or "independent"
common.install()

function request()
  local users = common.users
  local sender = users[math.random(1, #users)]
  local items = {}
  for i = 1, size do
    local recipient = sender
    while recipient == sender do recipient = users[math.random(1, #users)] end
    items[i] = string.format('{"wallet_number":"%s","amount":"%d.00","idempotency_key":"%s"}',
      recipient.number, math.random(1, 100), common.next_key())
  end
  return wrk.format("POST", "/api/v1/transfers/batch", {
    ["Authorization"] = sender.auth,
    ["Content-Type"] = "application/json",
  }, string.format('{"mode":"%s","transfers":[%s]}', mode, table.concat(items, ",")))
end
