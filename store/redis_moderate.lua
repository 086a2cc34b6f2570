-- Sets or deletes one field of a moderation hash and bumps the moderation
-- version, atomically, so a node that reads the new version reads the
-- change.
--
-- KEYS[1] the hash (settings: stream -> JSON; bans: "stream user" -> Unix
--         ms the ban ends)
-- KEYS[2] the moderation version
-- ARGV[1] the field
-- ARGV[2] the value, or "" to delete the field
-- ARGV[3] the most fields the hash may hold
-- ARGV[4] now in Unix ms when the values are expiry stamps (bans): a full
--         hash first drops the expired ones; "" otherwise
--
-- Returns 1 when the hash changed, 0 when it did not (deleting a missing
-- field), -1 when it is full.
local hash, version = KEYS[1], KEYS[2]
local field, value, most, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if value == '' then
  if redis.call('HDEL', hash, field) == 0 then
    return 0
  end
  redis.call('INCR', version)
  return 1
end
if redis.call('HEXISTS', hash, field) == 0 and redis.call('HLEN', hash) >= most then
  if now == '' then
    return -1
  end
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= tonumber(now) then
      redis.call('HDEL', hash, all[i])
    end
  end
  if redis.call('HLEN', hash) >= most then
    return -1
  end
end
redis.call('HSET', hash, field, value)
redis.call('INCR', version)
return 1
