-- Seals one shard up to a horizon.
--
-- KEYS[1] the shard's seal: the newest second declared final
-- ARGV[1] the horizon to seal up to: the seal only moves forward
-- ARGV[2] TTL of the seal, in seconds
--
-- redis_add.lua reads the seal on this same node, in the same slot, and
-- carries a write for a second at or before it into the next one, so once
-- this script has run every second up to the seal is final on this shard,
-- whatever any clock says: the caller may read those seconds, in any
-- number of steps. One key, so that a migrating slot never answers it
-- TRYAGAIN.
--
-- Returns the seal.
local seal_key = KEYS[1]
local horizon = tonumber(ARGV[1])
local seal = tonumber(redis.call('GET', seal_key))
if not seal or seal < horizon then
  seal = horizon
  redis.call('SET', seal_key, seal, 'EX', ARGV[2])
else
  redis.call('EXPIRE', seal_key, ARGV[2])
end
return seal
