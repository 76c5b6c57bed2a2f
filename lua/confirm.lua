-- Turns a paid reservation into a sale.
-- KEYS[1] sale:{SKU}, KEYS[2] sale:{SKU}:res, KEYS[3] sale:{SKU}:pending, KEYS[4] sale:{SKU}:inputs
-- ARGV orderNo
-- Returns CONFIRMED | ALREADY_CONFIRMED | RELEASED | NOT_FOUND. Idempotent: R or C -> S happens once.
local sale, res, pending, inputs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local orderNo = ARGV[1]

-- Sold (or never to be sold): the order's promise is kept, its input no longer needed.
if pending and inputs then
  redis.call('ZREM', pending, orderNo)
  redis.call('HDEL', inputs, orderNo)
end

local record = redis.call('HGET', res, orderNo)
if not record then
  return 'NOT_FOUND'
end

local state, quantity = string.match(record, '^(%u)|.*|(%d+)|%d+$')
if not state then
  return redis.error_reply('ERR confirm: malformed reservation record for ' .. orderNo)
end

if state == 'S' then
  return 'ALREADY_CONFIRMED'
end
if state == 'X' then
  -- The units already went back on sale (and may be someone else's now): the caller must not sell
  -- them again; the order fails and its payment is refunded.
  return 'RELEASED'
end

-- R (an order from before reservations were claimed) or C (claimed by the order's workflow).
quantity = tonumber(quantity)
-- Units move from reserved to sold; the user's holding already counts them, so it is unchanged.
redis.call('HINCRBY', sale, 'reserved', -quantity)
redis.call('HINCRBY', sale, 'sold', quantity)
redis.call('HSET', res, orderNo, 'S' .. string.sub(record, 2))
return 'CONFIRMED'
