-- Adds what one push node's limiter keys used since its last exchange to
-- the fleet's record of them, and returns what each key owes: its TAT
-- less Redis's now, in microseconds, never below 0.
--
-- KEYS[i] one limiter key of one shard (the shard's hash tag)
-- ARGV[i] (i = 1..#KEYS) microseconds of allowance KEYS[i] used
--
-- Time is Redis's own (TIME), so push nodes whose clocks disagree share
-- one timeline; each turns the debt back into its own clock. A key holds
-- its TAT in Unix microseconds (exact in a Lua number) and expires once
-- its bucket is full again. Usage is charged at now, a moment after it was
-- taken: it errs toward the limit.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  tat = tat + tonumber(ARGV[i])
  -- A key whose TAT passed is a full bucket, the same as no key.
  local ttl = math.floor((tat - now) / 1000) + 1000
  redis.call('SET', key, string.format('%d', tat), 'PX', ttl)
  out[i] = tat - now
end
return out
