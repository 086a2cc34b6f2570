-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Adds one batch's deltas and comments for the streams of one shard,
-- atomically and at most once per batch ID.
--
-- KEYS[1] the shard's active-streams index (sorted set: stream -> newest
--         second written)
-- KEYS[2] the batch's dedupe marker in this shard
-- KEYS[3] the shard's data-point stream
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
-- ARGV[3] TTL of count and comment keys and of the index, in seconds
-- ARGV[4] TTL of the dedupe marker, in milliseconds
-- ARGV[5] approximate MAXLEN of the data-point stream; 0 keeps no points
-- ARGV[6] TTL of the data-point stream, in seconds
-- ARGV[7] prefix of count keys; a count key is prefix .. stream .. ":" .. second
-- ARGV[8] prefix of comment keys, likewise
-- ARGV[9] most comments a second holds
-- ARGV[10] number of deltas, n
-- ARGV[11..10+4n] deltas as (stream, second, emoji, count) quadruples
-- ARGV[11+4n..] comments as (stream, second, "user:text") triples
--
-- Count and comment keys carry the shard's hash tag, like KEYS, so they
-- live in the same cluster slot. Returns {applied (0 or 1), reactions
-- carried, comments carried, comments dropped}.
local index, marker, points = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', marker) == 1 then
  return {0, 0, 0, 0}
end

local horizon = sealed_horizon(ARGV[1], ARGV[2])

local ttl, maxlen, points_ttl = ARGV[3], tonumber(ARGV[5]), ARGV[6]
local count_prefix, comment_prefix, max_comments = ARGV[7], ARGV[8], tonumber(ARGV[9])
local first_comment = 11 + 4 * tonumber(ARGV[10])
local newest = {}   -- stream -> newest second written
local expired = {}  -- keys whose TTL is set

-- open returns the second to write to: sealed ones, maybe published
-- already, are carried into the oldest open second.
local function open(stream, second)
  local target = tonumber(second)
  local carried = 0
  if target <= horizon then
    target = horizon + 1
    carried = 1
  end
  if not newest[stream] or newest[stream] < target then
    newest[stream] = target
  end
  return target, carried
end

local function expire(key)
  if not expired[key] then
    redis.call('EXPIRE', key, ttl)
    expired[key] = true
  end
end

local carried = 0
for i = 11, first_comment - 1, 4 do
  local stream, emoji, count = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local target, late = open(stream, ARGV[i + 1])
  carried = carried + late * tonumber(count)
  local key = count_prefix .. stream .. ':' .. target
  redis.call('HINCRBY', key, emoji, count)
  expire(key)
  if maxlen > 0 then
    -- The data point keeps the second the reactions were made in.
    redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
      'stream', stream, 'second', ARGV[i + 1], 'emoji', emoji, 'count', count)
  end
end

local comments_carried, dropped = 0, 0
for i = first_comment, #ARGV, 3 do
  local stream = ARGV[i]
  local target, late = open(stream, ARGV[i + 1])
  local key = comment_prefix .. stream .. ':' .. target
  if redis.call('LLEN', key) < max_comments then
    comments_carried = comments_carried + late
    redis.call('RPUSH', key, ARGV[i + 2])
    expire(key)
  else
    dropped = dropped + 1
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
return {1, carried, comments_carried, dropped}
