-- Returns the newest sealed second by the Redis clock: the one clock every
-- push and pull node agrees on.
--
-- KEYS[1] any key of the shard whose node answers (only routes the call)
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
local now_ms
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now_ms = tonumber(ARGV[1])
end
return math.floor((now_ms - tonumber(ARGV[2])) / 1000) - 1
