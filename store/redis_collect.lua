-- Reads sealed seconds of one shard.
--
-- KEYS    (count key, comment key) pairs, one per second to read; the
--         caller sealed the shard through every one of them first (see
--         Redis.sealShards), so they are final
--
-- Returns a flat array of (i, {emoji, count, ...}, {entry, ...}) triples
-- for the non-empty seconds, i being the pair's place in KEYS (from 1).
local out = {}
for i = 1, #KEYS, 2 do
  local counts = redis.call('HGETALL', KEYS[i])
  local comments = redis.call('LRANGE', KEYS[i + 1], 0, -1)
  if #counts > 0 or #comments > 0 then
    out[#out + 1] = (i + 1) / 2
    out[#out + 1] = counts
    out[#out + 1] = comments
  end
end
return out
