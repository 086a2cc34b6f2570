-- sealed_horizon returns the newest sealed second, as store.Horizon
-- computes it, at now_arg (Unix milliseconds), or by the Redis clock when
-- now_arg is empty: the one clock every push and pull node agrees on.
-- It is prepended to the scripts that need it.
local function sealed_horizon(now_arg, seal_ms)
  local now_ms
  if now_arg == '' then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  else
    now_ms = tonumber(now_arg)
  end
  return math.floor((now_ms - tonumber(seal_ms)) / 1000) - 1
end
