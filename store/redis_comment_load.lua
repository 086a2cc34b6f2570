-- Reads the push fleet's fresh comment figures for the streams of one
-- shard, and, in shard 0, the live push nodes, judged by Redis's own clock
-- (TIME), the one redis_comment_report.lua stamps them with. Fields older
-- than ARGV[1] milliseconds are deleted.
--
-- KEYS[1] the push fleet's sorted set when ARGV[2] is "1", else the first
--         stream's load hash
-- KEYS[2..] the streams' load hashes
--
-- Returns {live nodes, {node, offered, ...} for each load hash in order}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local nodes, first = {}, 1
if ARGV[2] == '1' then
  nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now - ttl, '+inf')
  first = 2
end
local loads = {}
for i = first, #KEYS do
  local fresh, stale = {}, {}
  local fields = redis.call('HGETALL', KEYS[i])
  for j = 1, #fields, 2 do
    local offered, at = string.match(fields[j + 1], '^(%d+) (%d+)$')
    if offered and now - tonumber(at) <= ttl then
      fresh[#fresh + 1] = fields[j]
      fresh[#fresh + 1] = offered
    else
      stale[#stale + 1] = fields[j]
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[i], unpack(stale))
  end
  loads[#loads + 1] = fresh
end
return {nodes, loads}
