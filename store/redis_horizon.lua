-- (redis_clock.lua is prepended: it defines sealed_horizon.)
--
-- Returns the newest sealed second.
--
-- KEYS[1] any key of the shard whose node answers (only routes the call)
-- ARGV[1] now in Unix milliseconds, or "" to use the Redis clock
-- ARGV[2] seal delay in milliseconds
return sealed_horizon(ARGV[1], ARGV[2])
