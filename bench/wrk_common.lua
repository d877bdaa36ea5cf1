-- Shared by coffer's wrk scripts (bench/*.lua): signed-in users, unique keys, pacing, seeds.
-- Loaded with dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua") into each wrk state.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])

local common = {}
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

function common.now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

-- BENCH_USERS_FILE: one "access_token wallet_number" per line, as bench/http_population.py
-- writes them. Read in every thread (each has its own lua state).
function common.load_users()
  local users = {}
  for line in io.lines(os.getenv("BENCH_USERS_FILE")) do
    local token, number = line:match("^(%S+) (%S+)$")
    users[#users + 1] = { auth = "Bearer " .. token, number = number }
  end
  if #users < 3 then error("BENCH_USERS_FILE needs at least three users") end
  return users
end

-- Random sender and recipient. With HOT_SHARE h, a share h of the transfers go into users[1]
-- (the hot wallet), which then never sends; the rest go between two distinct other users.
function common.pair(users, hot_share)
  local low = hot_share > 0 and 2 or 1
  local sender = users[math.random(low, #users)]
  if math.random() < hot_share then return sender, users[1] end
  local recipient = sender
  while recipient == sender do recipient = users[math.random(low, #users)] end
  return sender, recipient
end

-- setup() runs in wrk's main state once per thread, before the threads start: number them,
-- so keys (BENCH_RUN-<thread>-<n>) are unique and each thread draws its own random stream.
local threads = {}
function common.setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

-- The first refusal a thread saw (status and the start of the body), for the report; wrk
-- itself only counts responses >= 400. done() runs in the main state after the threads ended.
function common.response(status, headers, body)
  if status >= 400 and first_error == nil then
    first_error = status .. " " .. string.sub(body or "", 1, 300)
  end
end

function common.done()
  for _, thread in ipairs(threads) do
    local refusal = thread:get("first_error")
    if refusal then
      io.write("BENCH_FIRST_ERROR " .. string.gsub(refusal, "%s+", " ") .. "\n")
      return
    end
  end
end

local sent = 0
function common.next_key()
  sent = sent + 1
  return string.format("%s-%d-%d", os.getenv("BENCH_RUN"), thread_id, sent)
end

function common.seed()
  math.randomseed(thread_id * 7919 + tonumber(os.getenv("BENCH_SEED") or "1"))
end

-- Pacing: with BENCH_THREAD_RATE r (requests/s per thread) the thread's connections take send
-- slots 1000/r ms apart; a connection waits for the next free slot. A backlog of more than a
-- second is dropped rather than sent as a burst.
local rate = tonumber(os.getenv("BENCH_THREAD_RATE") or "0")
local next_slot = nil
function common.paced_delay()
  local now = common.now_ms()
  if next_slot == nil or next_slot < now - 1000 then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + 1000 / rate
  return wait > 0 and math.floor(wait) or 0
end
common.paced = rate > 0

-- Installs wrk's hooks for a script whose request() draws from common.users: thread numbering,
-- the first refusal, pacing when asked, and per-thread seed and users.
function common.install()
  setup = common.setup
  response = common.response
  done = common.done
  if common.paced then delay = common.paced_delay end
  init = function()
    common.seed()
    common.users = common.load_users()
  end
end

return common
