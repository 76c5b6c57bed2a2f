-- Moves one promised order's entry after a start attempt.
-- KEYS[1] sale:{SKU}:pending, KEYS[2] sale:{SKU}:inputs
-- ARGV orderNo, action ('retry': due again in delayMs; 'drop': its workflow exists or has closed, so
--      a starter has nothing more to do; the input stays for reads until the units are sold or back),
--      delayMs
-- Returns 1 if the entry was there, else 0 (claimed or released meanwhile: nothing to do).
local pending, inputs = KEYS[1], KEYS[2]
local orderNo, action, delayMs = ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0
if action == 'drop' then
  return redis.call('ZREM', pending, orderNo)
end
if action ~= 'retry' then
  return redis.error_reply('ERR promise_entry: action must be retry or drop')
end
if redis.call('ZSCORE', pending, orderNo) == false or redis.call('HEXISTS', inputs, orderNo) == 0 then
  return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', pending, now + delayMs, orderNo)
return 1
