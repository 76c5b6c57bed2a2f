-- Re-creates in Redis a reservation MySQL has but Redis lost (a Redis crash that lost the last
-- writes before it reached disk). Run by the reconciler only, for an order MySQL holds units for.
-- KEYS[1] sale:{SKU}, KEYS[2] sale:{SKU}:users, KEYS[3] sale:{SKU}:res
-- ARGV orderNo, userId, quantity, state ('C' awaiting payment, 'S' paid), reservedAtMs
-- Returns ADOPTED | EXISTS | NO_STOCK | NO_SALE.
local sale, users, res = KEYS[1], KEYS[2], KEYS[3]
local orderNo, userId, state, reservedAt = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local quantity = tonumber(ARGV[3])

if quantity == nil or quantity < 1 or (state ~= 'C' and state ~= 'S') or not string.match(reservedAt, '^%d+$') then
  return redis.error_reply('ERR adopt: bad arguments')
end
if redis.call('EXISTS', sale) == 0 then
  return 'NO_SALE'
end
if redis.call('HEXISTS', res, orderNo) == 1 then
  return 'EXISTS'
end
-- Never below zero: if the units were handed to someone else meanwhile, their order will fail in
-- MySQL (which has no units for it) and give them back; the next run adopts then.
local available = tonumber(redis.call('HGET', sale, 'available')) or 0
if available < quantity then
  return 'NO_STOCK'
end
redis.call('HINCRBY', sale, 'available', -quantity)
redis.call('HINCRBY', sale, state == 'S' and 'sold' or 'reserved', quantity)
redis.call('HINCRBY', users, userId, quantity)
redis.call('HSET', res, orderNo, state .. '|' .. userId .. '|' .. quantity .. '|' .. reservedAt)
return 'ADOPTED'
