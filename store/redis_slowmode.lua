-- Takes the slow-mode turns of users, fleet-wide: a user who commented on
-- a stream in slow mode may comment there again only once the period
-- passed, whichever push node takes the comment.
--
-- KEYS[i] the slow-mode key of one user on one stream (the stream's shard
--         hash tag)
-- ARGV[i] the stream's slow-mode period in milliseconds
--
-- Returns, for each key, 0 when the user's turn was free and is now taken
-- for the period, or the milliseconds (at least 1) until it is free. The
-- key's own expiry is the period, so Redis's clock alone decides and no
-- node's clock enters.
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'PX', ARGV[i]) then
    out[i] = 0
  else
    out[i] = math.max(redis.call('PTTL', key), 1)
  end
end
return out
