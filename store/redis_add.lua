-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Adds one batch's deltas and comments for the streams of one shard,
-- atomically and at most once per batch ID.
--
-- KEYS[1] the shard's active-streams index (sorted set: stream -> newest
--         second written)
-- KEYS[2] the batch's dedupe marker in this shard
-- KEYS[3] the shard's data-point stream
-- KEYS[4..] the history keys the batch may write: one hash per stream and
--         minute, for the minutes of its seconds and the minutes a late
--         second may be carried into
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
-- ARGV[3] TTL of count and comment keys and of the index, in seconds
-- ARGV[4] TTL of the dedupe marker, in milliseconds
-- ARGV[5] approximate MAXLEN of the data-point stream; 0 keeps no points
-- ARGV[6] TTL of the data-point stream, in seconds
-- ARGV[7] prefix of count keys; a count key is prefix .. stream .. ":" .. second
-- ARGV[8] prefix of comment keys, likewise
-- ARGV[9] most comments a second holds
-- ARGV[10] prefix of history keys; a history key is
--          prefix .. stream .. ":" .. floor(second / 60)
-- ARGV[11] TTL of history keys, in seconds; 0 keeps no history
-- ARGV[12] number of deltas, n
-- ARGV[13] most retractions a second holds beyond its comments
-- ARGV[14..13+4n] deltas as (stream, second, emoji, count) quadruples
-- ARGV[14+4n..] comments as (stream, second, entry) triples; an entry
--               starting with "!" is a retraction, which the comment
--               budget does not shed and history does not keep
--
-- A history hash holds, for second s of its minute, the field
-- (s % 60) .. ":" .. emoji -> count and (s % 60) .. "#" .. i -> "user:text"
-- for the i-th comment (from 0) of the second: every sealed second, kept
-- for replay long after its count and comment keys expired.
--
-- Count and comment keys carry the shard's hash tag, like KEYS, so they
-- live in the same cluster slot. Returns {applied (0 or 1), reactions
-- carried, comments carried, comments dropped, retractions dropped}, or an error, having
-- written nothing, when a history key it needs was not passed in KEYS.
local index, marker, points = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', marker) == 1 then
  return {0, 0, 0, 0, 0}
end

local horizon = sealed_horizon(ARGV[1], ARGV[2])

local ttl, maxlen, points_ttl = ARGV[3], tonumber(ARGV[5]), ARGV[6]
local count_prefix, comment_prefix, max_comments = ARGV[7], ARGV[8], tonumber(ARGV[9])
local history_prefix, history_ttl = ARGV[10], tonumber(ARGV[11])
local max_retractions = tonumber(ARGV[13])
local first_delta = 14
local first_comment = first_delta + 4 * tonumber(ARGV[12])

-- history_key returns the history hash of a second and the second's
-- offset in its minute. Deltas come grouped by stream and second, so the
-- last answer is kept.
local last_stream, last_second, last_key, last_offset
local function history_key(stream, second)
  if stream ~= last_stream or second ~= last_second then
    local minute = math.floor(second / 60)
    last_stream, last_second = stream, second
    last_key, last_offset = history_prefix .. stream .. ':' .. minute, second - minute * 60
  end
  return last_key, last_offset
end

if history_ttl > 0 then
  -- The caller declares the history key of every second it sends; a
  -- sealed second is carried into the oldest open one, whose key it can
  -- only guess. Those are checked before anything is written, so a batch
  -- is applied whole or not at all.
  local declared
  local function check(stream, second)
    local target = tonumber(second)
    if target > horizon then
      return nil
    end
    if not declared then
      declared = {}
      for i = 4, #KEYS do
        declared[KEYS[i]] = true
      end
    end
    local key = history_key(stream, horizon + 1)
    if not declared[key] then
      return redis.error_reply('history key ' .. key .. ' was not passed in KEYS')
    end
  end
  for i = first_delta, first_comment - 1, 4 do
    local err = check(ARGV[i], ARGV[i + 1])
    if err then return err end
  end
  for i = first_comment, #ARGV, 3 do
    local err = check(ARGV[i], ARGV[i + 1])
    if err then return err end
  end
end
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

local function expire_history(key)
  if not expired[key] then
    redis.call('EXPIRE', key, history_ttl)
    expired[key] = true
  end
end

local carried = 0
for i = first_delta, first_comment - 1, 4 do
  local stream, emoji, count = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local target, late = open(stream, ARGV[i + 1])
  carried = carried + late * tonumber(count)
  local key = count_prefix .. stream .. ':' .. target
  redis.call('HINCRBY', key, emoji, count)
  expire(key)
  -- The push nodes' own tallies ('~' names, see store.SampledTaps) are
  -- no reactions: they stay out of the history and the data points.
  local reaction = string.byte(emoji) ~= 126
  if history_ttl > 0 and reaction then
    local hkey, offset = history_key(stream, target)
    redis.call('HINCRBY', hkey, offset .. ':' .. emoji, count)
    expire_history(hkey)
  end
  if maxlen > 0 and reaction then
    -- The data point keeps the second the reactions were made in.
    redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
      'stream', stream, 'second', ARGV[i + 1], 'emoji', emoji, 'count', count)
  end
end

local comments_carried, dropped, retractions_dropped = 0, 0, 0
for i = first_comment, #ARGV, 3 do
  local stream, entry = ARGV[i], ARGV[i + 2]
  local target, late = open(stream, ARGV[i + 1])
  local key = comment_prefix .. stream .. ':' .. target
  local held = redis.call('LLEN', key)
  if string.sub(entry, 1, 1) == '!' then
    if held < max_comments + max_retractions then
      redis.call('RPUSH', key, entry)
      expire(key)
    else
      retractions_dropped = retractions_dropped + 1
    end
  elseif held < max_comments then
    comments_carried = comments_carried + late
    redis.call('RPUSH', key, entry)
    expire(key)
    if history_ttl > 0 then
      local hkey, offset = history_key(stream, target)
      redis.call('HSET', hkey, offset .. '#' .. held, ARGV[i + 2])
      expire_history(hkey)
    end
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
return {1, carried, comments_carried, dropped, retractions_dropped}
