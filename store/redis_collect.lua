-- Reads the sealed, non-empty seconds of the served streams of one shard.
-- Only streams whose newest written second is past their cursor are read,
-- so the work grows with the served streams that had reactions or
-- comments.
--
-- KEYS[1] the shard's active-streams index
-- ARGV[1] the horizon: the newest sealed second
-- ARGV[2] prefix of count keys, as in redis_add.lua
-- ARGV[3] prefix of comment keys, as in redis_add.lua
-- ARGV[4..] cursors as (stream, after) pairs, after already raised to the
--           window's start
--
-- Returns a flat array of (stream, second, {emoji, count, ...},
-- {"user:text", ...}) quadruples, in cursor order, oldest second first
-- within a stream.
local index, horizon = KEYS[1], tonumber(ARGV[1])
local count_prefix, comment_prefix = ARGV[2], ARGV[3]
local out = {}
-- ZMSCORE in chunks keeps the argument count far below Lua's stack limit.
local chunk = 500
for first = 4, #ARGV, 2 * chunk do
  local last = math.min(first + 2 * chunk - 1, #ARGV)
  local members = {}
  for i = first, last, 2 do
    members[#members + 1] = ARGV[i]
  end
  local scores = redis.call('ZMSCORE', index, unpack(members))
  for j = 1, #members do
    local newest = scores[j] and tonumber(scores[j])
    local stream, after = members[j], tonumber(ARGV[first + 2 * (j - 1) + 1])
    if newest and newest > after then
      for second = after + 1, math.min(newest, horizon) do
        local counts = redis.call('HGETALL', count_prefix .. stream .. ':' .. second)
        local comments = redis.call('LRANGE', comment_prefix .. stream .. ':' .. second, 0, -1)
        if #counts > 0 or #comments > 0 then
          out[#out + 1] = stream
          out[#out + 1] = second
          out[#out + 1] = counts
          out[#out + 1] = comments
        end
      end
    end
  end
end
return out
