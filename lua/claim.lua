-- The order's workflow takes ownership of its reservation before it persists the order.
-- KEYS[1] sale:{SKU}, KEYS[2] sale:{SKU}:users, KEYS[3] sale:{SKU}:res, KEYS[4] sale:{SKU}:pending,
-- KEYS[5] sale:{SKU}:idem, KEYS[6] sale:{SKU}:holds
-- ARGV orderNo, userId, quantity, reservedAtMs, idempotencyKey ('' = none)
-- Returns CLAIMED | ALREADY_CLAIMED | RECLAIMED | SOLD | RELEASED | NOT_FOUND.
--
-- Ownership is what makes a unit impossible to both release and persist: once claimed (state C),
-- only the workflow may release or confirm it; the API (after a failed start) and the reconciler
-- (for orphans) may release only an unclaimed reservation (state R). A workflow that finds its
-- reservation RELEASED must not persist the order: the units may be someone else's.
--
-- No record at all means Redis lost the reservation (a restart from an append-only file without
-- its last second of writes, a failover to a replica that lacked it): the counters lost it too,
-- so the reservation is made again, whole, as reserve.lua made it (RECLAIMED): the units if they
-- are still there, the shopper's holding within the limit, the idempotency key's order. Otherwise
-- NOT_FOUND and the order fails: the units went to others, the shopper holds the limit through
-- other orders, or the key now names another order. MySQL, which takes its own units when the
-- order is persisted, keeps this from ever selling a unit twice. A failing order still gets its
-- key back (when no other order took it): a retry with it names this order, never a new one.
local sale, users, res, pending, idem, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local orderNo, userId, reservedAt, idemKey = ARGV[1], ARGV[2], ARGV[4], ARGV[5] or ''
local quantity = tonumber(ARGV[3])

-- The order's workflow runs: its promise to be started is kept, whatever the reservation's state.
if pending then
  redis.call('ZREM', pending, orderNo)
end

local record = redis.call('HGET', res, orderNo)
if not record then
  if quantity == nil or quantity < 1 or userId == nil or userId == '' or not string.match(reservedAt or '', '^%d+$') then
    return 'NOT_FOUND'
  end
  -- Same field layout as reserve.lua: the user id length-prefixed.
  local idemField = nil
  if idem and idemKey ~= '' then
    idemField = string.len(userId) .. ':' .. userId .. '\n' .. idemKey
    local keyed = redis.call('HGET', idem, idemField)
    if keyed and keyed ~= orderNo then
      return 'NOT_FOUND'
    end
    redis.call('HSET', idem, idemField, orderNo)
  end
  local f = redis.call('HMGET', sale, 'available', 'limit')
  local available, limit = tonumber(f[1]), tonumber(f[2]) or 0
  if available == nil or available < quantity then
    return 'NOT_FOUND'
  end
  if (tonumber(redis.call('HGET', users, userId)) or 0) + quantity > limit then
    return 'NOT_FOUND'
  end
  redis.call('HINCRBY', sale, 'available', -quantity)
  redis.call('HINCRBY', sale, 'reserved', quantity)
  redis.call('HINCRBY', users, userId, quantity)
  redis.call('HSET', res, orderNo, 'C|' .. userId .. '|' .. quantity .. '|' .. reservedAt)
  if holds then
    local holding = redis.call('HGET', holds, userId)
    redis.call('HSET', holds, userId, holding and (holding .. ' ' .. orderNo) or orderNo)
  end
  return 'RECLAIMED'
end
local state = string.sub(record, 1, 1)
if state == 'R' then
  redis.call('HSET', res, orderNo, 'C' .. string.sub(record, 2))
  return 'CLAIMED'
end
if state == 'C' then
  return 'ALREADY_CLAIMED'
end
if state == 'S' then
  return 'SOLD'
end
if state == 'X' then
  return 'RELEASED'
end
return redis.error_reply('ERR claim: malformed reservation record for ' .. orderNo)
