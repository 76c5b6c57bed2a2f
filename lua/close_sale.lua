-- Ends a sale now (an operator closes it early), once: later closes keep the first end.
-- KEYS[1] sale:{SKU}
-- ARGV nowMs
-- Returns the sale's end (epoch ms) after the call, or -1 when there is no sale. `ends` 0 means
-- "no end" (define_sale.lua); reserve.lua refuses a checkout from `ends` on (NOT_ACTIVE).
local sale = KEYS[1]
local now = tonumber(ARGV[1])
if now == nil or now <= 0 or not string.match(ARGV[1], '^%d+$') then
  return redis.error_reply('ERR close_sale: nowMs must be a positive integer')
end
if redis.call('EXISTS', sale) == 0 then
  return -1
end
local ends = tonumber(redis.call('HGET', sale, 'ends')) or 0
-- Already ended (closed before, or its window is over): the end stays where it is.
if ends > 0 and ends <= now then
  return ends
end
redis.call('HSET', sale, 'ends', ARGV[1])
return now
