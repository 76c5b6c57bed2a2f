-- The order's workflow takes ownership of its reservation before it persists the order.
-- KEYS[1] sale:{SKU}:res
-- ARGV orderNo
-- Returns CLAIMED | ALREADY_CLAIMED | SOLD | RELEASED | NOT_FOUND.
--
-- Ownership is what makes a unit impossible to both release and persist: once claimed (state C),
-- only the workflow may release or confirm it; the API (after a failed start) and the reconciler
-- (for orphans) may release only an unclaimed reservation (state R). A workflow that finds its
-- reservation RELEASED or NOT_FOUND must not persist the order: the units may be someone else's.
local res = KEYS[1]
local orderNo = ARGV[1]

local record = redis.call('HGET', res, orderNo)
if not record then
  return 'NOT_FOUND'
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
