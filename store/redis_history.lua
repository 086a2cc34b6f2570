-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Reads the history hashes of one stream, with the horizon read in the same
-- step, so that what it calls sealed was so when the hashes were read.
--
-- KEYS    the stream's history hashes, one per minute, oldest first
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
--
-- Returns {horizon, {field, value, ...} per key}; the caller keeps only
-- the sealed seconds.
local out = {sealed_horizon(ARGV[1], ARGV[2])}
for i = 1, #KEYS do
  out[#out + 1] = redis.call('HGETALL', KEYS[i])
end
return out
