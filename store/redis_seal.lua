-- Seals one shard up to a horizon, then lists the streams written after
-- the oldest cursor of the caller in that shard.
--
-- KEYS[1] the shard's seal: the newest second declared final
-- KEYS[2] the shard's active-streams index (sorted set: stream -> newest
--         second written)
-- ARGV[1] the horizon to seal up to: the seal only moves forward
-- ARGV[2] TTL of the seal, in seconds
-- ARGV[3] list streams whose newest second is after this one
-- ARGV[4] list at most this many; 0 lists none
--
-- redis_add.lua reads the seal on this same node, in the same slot, and
-- carries a write for a second at or before it into the next one, so once
-- this script has run every second up to the seal is final on this shard,
-- whatever any clock says: the caller may read those seconds, in any
-- number of steps.
--
-- Returns {seal, {stream, newest, ...}}.
local seal_key, index = KEYS[1], KEYS[2]
local horizon = tonumber(ARGV[1])
local seal = tonumber(redis.call('GET', seal_key))
if not seal or seal < horizon then
  seal = horizon
  redis.call('SET', seal_key, seal, 'EX', ARGV[2])
else
  redis.call('EXPIRE', seal_key, ARGV[2])
end
local written = {}
if tonumber(ARGV[4]) > 0 then
  written = redis.call('ZRANGE', index, '(' .. ARGV[3], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[4], 'WITHSCORES')
end
return {seal, written}
