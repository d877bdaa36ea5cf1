-- wrk load for coffer's POST /api/v1/wallet/transfer: random sender and recipient among the
-- signed-in users of BENCH_USERS_FILE, HOT_SHARE of the transfers into one wallet, a unique
-- Idempotency-Key per request, 1.00 to 100.00 each. See bench/wrk_common.lua for the rest.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
local hot_share = tonumber(os.getenv("HOT_SHARE") or "0")
common.install()

function request()
  local sender, recipient = common.pair(common.users, hot_share)
  return wrk.format("POST", "/api/v1/wallet/transfer", {
    ["Authorization"] = sender.auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = common.next_key(),
  }, string.format('{"wallet_number":"%s","amount":"%d.00"}', recipient.number, math.random(1, 100)))
end
