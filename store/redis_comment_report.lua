-- Records one push node's comment counts for the streams of one shard,
-- and, in shard 0, that the node is live, all stamped with Redis's own
-- clock (TIME), which CommentLoad judges them by too: push nodes whose
-- clocks disagree see the same live fleet.
--
-- KEYS[1] the push fleet's sorted set (node -> Unix ms of its last
--         report) when ARGV[3] is "1", else the first stream's load hash
-- KEYS[2..] the streams' load hashes (node -> "<offered> <unix ms>")
-- ARGV[1] the node
-- ARGV[2] CommentLoadTTL in milliseconds
-- ARGV[3] "1" when KEYS[1] is the fleet's set
-- ARGV[4..] the offered count of each load hash, in order
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, ttl = ARGV[1], tonumber(ARGV[2])
local first = 1
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, node)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  first = 2
end
for i = first, #KEYS do
  redis.call('HSET', KEYS[i], node, ARGV[4 + i - first] .. ' ' .. now)
  redis.call('PEXPIRE', KEYS[i], 2 * ttl)
end
return now
