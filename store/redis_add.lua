-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Adds one batch's deltas and comments for the streams of one shard,
-- atomically and at most once per batch ID.
--
-- KEYS[1] the shard's active-streams index (sorted set: stream -> newest
--         second written)
-- KEYS[2] the batch's dedupe marker in this shard
-- KEYS[3] the shard's data-point stream
-- KEYS[4] the shard's seal: a sorted set whose one member "s" scores the
--         newest second a Collect of this shard declared final (see
--         Redis.sealShards)
-- KEYS[5..] every count, comment and history key the batch may write: the
--         keys of its own seconds and of the seconds it may be carried
--         into. The script touches no key it was not given, so that in a
--         cluster whose slot is migrating Redis can answer ASK or TRYAGAIN
--         for the keys still on the other node.
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
-- ARGV[14] most seconds a write may be ahead of the open second
-- ARGV[15] most seconds past the oldest open second a comment may spill
--          into
-- ARGV[16..15+4n] deltas as (stream, second, emoji, count) quadruples
-- ARGV[16+4n..] comments as (stream, second, entry) triples; an entry
--               starting with "!" is a retraction, which does not spill
--               and history does not keep
--
-- Every reaction count, comment and retraction written is also appended to
-- the data-point stream (docs/operations.md lists its records): the
-- archiver drains it into PostgreSQL.
--
-- A history hash holds, for second s of its minute, the field
-- (s % 60) .. ":" .. emoji -> count and (s % 60) .. "#" .. i -> "user:text"
-- for the i-th comment (from 0) of the second: every sealed second, kept
-- for replay long after its count and comment keys expired.
--
-- Sealed seconds are those up to the shard's seal, the value Collect
-- advances on this same node before it reads: a write for one of them is
-- carried into the oldest open second, so it is never lost in a second
-- already read, whatever the clocks of the push and pull nodes say. With no
-- seal yet (no pull node read the shard for a day), the clock decides. A
-- write more than ARGV[14] seconds ahead of the open second (a push node
-- whose clock is far ahead) goes to the open second too: its keys would
-- expire before it was sealed.
--
-- A second holds at most ARGV[9] comments (retractions count too). A
-- comment whose second is full (a backlog of late comments carried into
-- the open second, or comments taken in more seconds than the cap) was
-- accepted all the same, so it spills into the next second with room, up
-- to ARGV[15] seconds past the oldest open second (the seal's next); only
-- past that is it dropped.
--
-- Returns {applied (0 or 1), reactions carried, comments carried, comments
-- dropped, retractions dropped, seal, future reactions clamped, deepest
-- spill}, the spill being how many seconds past its own second the
-- furthest comment went; or, having written nothing, {-1, seal, open
-- second, spill} when a key it needs was not passed in KEYS: the caller
-- passes the keys of that seal and of spill seconds past each comment's
-- second, and runs it again.
local index, marker, points, seal_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seal = tonumber(redis.call('ZSCORE', seal_key, 's'))
if redis.call('EXISTS', marker) == 1 then
  return {0, 0, 0, 0, 0, seal or -1, 0, 0}
end

local clock = sealed_horizon(ARGV[1], ARGV[2])
local horizon = seal or clock
local open_second = math.max(horizon, clock) + 1
local newest_allowed = open_second + tonumber(ARGV[14])
local last_spill = horizon + 1 + tonumber(ARGV[15])

local ttl, maxlen, points_ttl = ARGV[3], tonumber(ARGV[5]), ARGV[6]
local count_prefix, comment_prefix, max_comments = ARGV[7], ARGV[8], tonumber(ARGV[9])
local history_prefix, history_ttl = ARGV[10], tonumber(ARGV[11])
local max_retractions = tonumber(ARGV[13])
local first_delta = 16
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

-- target returns the second to write to: a sealed one, maybe published
-- already, is carried into the oldest open second, and so is one too far
-- ahead; the second value is 1 for a late write, 2 for one too far ahead.
local function target(second)
  local s = tonumber(second)
  if s <= horizon then
    return horizon + 1, 1
  end
  if s > newest_allowed then
    return open_second, 2
  end
  return s, 0
end

-- Every key is checked before anything is written, so a batch is applied
-- whole or not at all.
local declared = {}
for i = 5, #KEYS do
  declared[KEYS[i]] = true
end
local function check(prefix, stream, second)
  local s = target(second)
  if not declared[prefix .. stream .. ':' .. s] then
    return false
  end
  return history_ttl == 0 or declared[(history_key(stream, s))]
end
for i = first_delta, first_comment - 1, 4 do
  if not check(count_prefix, ARGV[i], ARGV[i + 1]) then
    return {-1, horizon, open_second, 0}
  end
end

-- place[i] is the second the comment at ARGV[i] goes to, or false when
-- every second it may spill into is full. held counts a comment key's
-- entries with those this batch adds. A key not passed is taken as empty,
-- so that the spill asked for covers at least every key the next run
-- will look at.
local place, held, spill, missing = {}, {}, 0, false
for i = first_comment, #ARGV, 3 do
  local stream, second = ARGV[i], ARGV[i + 1]
  if string.sub(ARGV[i + 2], 1, 1) == '!' then
    if not check(comment_prefix, stream, second) then
      return {-1, horizon, open_second, 0}
    end
  else
    local first = target(second)
    local s, last = first, math.max(first, last_spill)
    place[i] = false
    while s <= last do
      local key = comment_prefix .. stream .. ':' .. s
      if not held[key] then
        if declared[key] and (history_ttl == 0 or declared[(history_key(stream, s))]) then
          held[key] = redis.call('LLEN', key)
        else
          held[key], missing = 0, true
        end
      end
      if held[key] < max_comments then
        held[key] = held[key] + 1
        place[i] = s
        spill = math.max(spill, s - first)
        break
      end
      s = s + 1
    end
  end
end
if missing then
  return {-1, horizon, open_second, spill}
end

local newest = {}   -- stream -> newest second written
local expired = {}  -- keys whose TTL is set

local function wrote(stream, s)
  if not newest[stream] or newest[stream] < s then
    newest[stream] = s
  end
end

local function open(stream, second)
  local s, why = target(second)
  wrote(stream, s)
  return s, why
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

local carried, clamped = 0, 0
for i = first_delta, first_comment - 1, 4 do
  local stream, emoji, count = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local s, why = open(stream, ARGV[i + 1])
  if why == 1 then
    carried = carried + tonumber(count)
  elseif why == 2 then
    clamped = clamped + tonumber(count)
  end
  local key = count_prefix .. stream .. ':' .. s
  redis.call('HINCRBY', key, emoji, count)
  expire(key)
  -- The push nodes' own tallies ('~' names, see store.SampledTaps) are
  -- no reactions: they stay out of the history and the data points.
  local reaction = string.byte(emoji) ~= 126
  if history_ttl > 0 and reaction then
    local hkey, offset = history_key(stream, s)
    redis.call('HINCRBY', hkey, offset .. ':' .. emoji, count)
    expire_history(hkey)
  end
  if maxlen > 0 and reaction then
    -- The data point keeps the second the reactions were made in, and,
    -- when they were carried, the second viewers (and History) got them
    -- in: the archive (package archive) keeps what History answered.
    if why == 0 then
      redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
        'stream', stream, 'second', ARGV[i + 1], 'emoji', emoji, 'count', count)
    else
      redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
        'stream', stream, 'second', ARGV[i + 1], 'emoji', emoji, 'count', count, 'at', s)
    end
  end
end

local comments_carried, dropped, retractions_dropped = 0, 0, 0
for i = first_comment, #ARGV, 3 do
  local stream, entry = ARGV[i], ARGV[i + 2]
  if string.sub(entry, 1, 1) == '!' then
    local s = open(stream, ARGV[i + 1])
    local key = comment_prefix .. stream .. ':' .. s
    if redis.call('LLEN', key) < max_comments + max_retractions then
      redis.call('RPUSH', key, entry)
      expire(key)
      if maxlen > 0 then
        redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
          'stream', stream, 'second', ARGV[i + 1], 'retract', string.sub(entry, 2), 'at', s)
      end
    else
      retractions_dropped = retractions_dropped + 1
    end
  elseif place[i] then
    local s = place[i]
    local _, why = target(ARGV[i + 1])
    if why == 1 then
      comments_carried = comments_carried + 1
    end
    wrote(stream, s)
    local key = comment_prefix .. stream .. ':' .. s
    local n = redis.call('RPUSH', key, entry)
    expire(key)
    if history_ttl > 0 then
      local hkey, offset = history_key(stream, s)
      redis.call('HSET', hkey, offset .. '#' .. (n - 1), entry)
      expire_history(hkey)
    end
    if maxlen > 0 then
      redis.call('XADD', points, 'MAXLEN', '~', maxlen, '*',
        'stream', stream, 'second', ARGV[i + 1], 'comment', entry, 'at', s, 'i', n - 1)
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
return {1, carried, comments_carried, dropped, retractions_dropped, horizon, clamped, spill}
