-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Adds one batch's deltas for the streams of one shard, atomically and at
-- most once per batch ID.
--
-- KEYS[1] the shard's active-streams index (sorted set: stream -> newest
--         second written)
-- KEYS[2] the batch's dedupe marker in this shard
-- KEYS[3] the shard's data-point stream
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
-- ARGV[3] TTL of count keys and of the index, in seconds
-- ARGV[4] TTL of the dedupe marker, in milliseconds
-- ARGV[5] approximate MAXLEN of the data-point stream; 0 keeps no points
-- ARGV[6] TTL of the data-point stream, in seconds
-- ARGV[7] prefix of count keys; a count key is prefix .. stream .. ":" .. second
-- ARGV[8..] deltas as (stream, second, emoji, count) quadruples
--
-- Count keys carry the shard's hash tag, like KEYS, so they live in the
-- same cluster slot. Returns {applied (0 or 1), reactions carried}.
local index, marker, points = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', marker) == 1 then
  return {0, 0}
end

local horizon = sealed_horizon(ARGV[1], ARGV[2])

local ttl, maxlen, points_ttl, prefix = ARGV[3], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local newest = {}   -- stream -> newest second written
local expired = {}  -- count keys whose TTL is set
local carried = 0
for i = 8, #ARGV, 4 do
  local stream, second, emoji, count = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local target = second
  if target <= horizon then
    -- Sealed and maybe published: carry into the oldest open second.
    target = horizon + 1
    carried = carried + tonumber(count)
  end
  local key = prefix .. stream .. ':' .. target
  redis.call('HINCRBY', key, emoji, count)
  if not expired[key] then
    redis.call('EXPIRE', key, ttl)
    expired[key] = true
  end
  if not newest[stream] or newest[stream] < target then
    newest[stream] = target
  end
  if maxlen > 0 then
    -- The data point keeps the second the reactions were made in.
    redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
      'stream', stream, 'second', ARGV[i + 1], 'emoji', emoji, 'count', count)
  end
end

for stream, second in pairs(newest) do
  redis.call('ZADD', index, 'GT', second, stream)
end
-- Streams silent for longer than the counts live leave the index.
redis.call('ZREMRANGEBYSCORE', index, '-inf', horizon - tonumber(ttl))
redis.call('EXPIRE', index, ttl)
if maxlen > 0 then
  redis.call('EXPIRE', points, points_ttl)
end
redis.call('SET', marker, '1', 'PX', ARGV[4])
return {1, carried}
