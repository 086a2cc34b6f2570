-- Adds what one push node's limiter keys used since it last handed them
-- over to the fleet's record of them, and returns what each key owes: its
-- TAT less Redis's now, in microseconds, never below 0.
--
-- KEYS[i]      one limiter key of one shard (the shard's hash tag)
-- ARGV[2i-1]   microseconds of allowance KEYS[i] used
-- ARGV[2i]     microseconds ago the node began counting that use
--
-- Time is Redis's own (TIME), so push nodes whose clocks disagree share
-- one timeline; each sends durations and turns the debt back into its own
-- clock. A key holds its TAT in Unix microseconds (exact in a Lua number).
-- Use is charged from when the node began counting it, not as if taken
-- now: a node that kept a key's use for a while (ratelimit.KeptShare) must
-- not make the fleet refuse it for that while. So a record stays a second
-- past its TAT, for the use other nodes counted over the same time to
-- stack on it, and then expires: a full bucket, the same as no key.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  tat = math.max(tat, now - tonumber(ARGV[2 * i])) + tonumber(ARGV[2 * i - 1])
  local owed = math.max(tat - now, 0)
  redis.call('SET', key, string.format('%d', tat), 'PX', math.floor(owed / 1000) + 1000)
  out[i] = owed
end
return out
