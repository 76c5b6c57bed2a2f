-- Re-creates in Redis a reservation MySQL has but Redis lost (a Redis crash that lost the last
-- writes before it reached disk, a failover to a replica that lacked them), whole: the units, the
-- shopper's holding and the checkout's idempotency key. Run by the reconciler only, for an order
-- MySQL holds units for.
-- KEYS[1] sale:{SKU}, KEYS[2] sale:{SKU}:users, KEYS[3] sale:{SKU}:res, KEYS[4] sale:{SKU}:idem,
-- KEYS[5] sale:{SKU}:holds
-- ARGV orderNo, userId, quantity, state ('C' awaiting payment, 'S' paid), reservedAtMs,
--      idempotencyKey ('' = none)
-- Returns ADOPTED | EXISTS | NO_STOCK | OVER_LIMIT | NO_SALE. OVER_LIMIT: the shopper holds the limit
-- through orders made since (the order then fails or times out; its units are never sold to them).
local sale, users, res, idem, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local orderNo, userId, state, reservedAt, idemKey = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6] or ''
local quantity = tonumber(ARGV[3])

if quantity == nil or quantity < 1 or (state ~= 'C' and state ~= 'S') or not string.match(reservedAt, '^%d+$') then
  return redis.error_reply('ERR adopt: bad arguments')
end
if redis.call('EXISTS', sale) == 0 then
  return 'NO_SALE'
end
-- The key names this order again, unless another order took it meanwhile (same layout as reserve.lua).
if idemKey ~= '' then
  local idemField = string.len(userId) .. ':' .. userId .. '\n' .. idemKey
  if not redis.call('HGET', idem, idemField) then
    redis.call('HSET', idem, idemField, orderNo)
  end
end
if redis.call('HEXISTS', res, orderNo) == 1 then
  return 'EXISTS'
end
-- Never below zero: if the units were handed to someone else meanwhile, their order will fail in
-- MySQL (which has no units for it) and give them back; the next run adopts then.
local f = redis.call('HMGET', sale, 'available', 'limit')
local available, limit = tonumber(f[1]) or 0, tonumber(f[2]) or 0
if available < quantity then
  return 'NO_STOCK'
end
if (tonumber(redis.call('HGET', users, userId)) or 0) + quantity > limit then
  return 'OVER_LIMIT'
end
redis.call('HINCRBY', sale, 'available', -quantity)
redis.call('HINCRBY', sale, state == 'S' and 'sold' or 'reserved', quantity)
redis.call('HINCRBY', users, userId, quantity)
redis.call('HSET', res, orderNo, state .. '|' .. userId .. '|' .. quantity .. '|' .. reservedAt)
local holding = redis.call('HGET', holds, userId)
redis.call('HSET', holds, userId, holding and (holding .. ' ' .. orderNo) or orderNo)
return 'ADOPTED'
