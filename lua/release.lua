-- Gives a reservation's units back to the sale (payment timeout, cancel, failed persistence, orphan).
-- KEYS[1] sale:{SKU}, KEYS[2] sale:{SKU}:users, KEYS[3] sale:{SKU}:res,
-- KEYS[4] sale:{SKU}:pending, KEYS[5] sale:{SKU}:inputs (the order's promise: dropped once its units are back or sold),
-- KEYS[6] sale:{SKU}:holds (the user's orders holding units: this one leaves it once its units are back)
-- KEYS[7..12] the sale's line (reserve.lua): :line, :line:pre, :line:places, :line:batches, :line:use, :line:used
-- The checkout's key is never forgotten (sale:{SKU}:idem is not touched): it keeps answering its order, and the
-- reconciler counts on it to find keys Redis lost.
-- ARGV orderNo, sku (for the notification), mode ('owner' or 'unclaimed'; default 'owner'),
--      reservedBeforeMs (with 'unclaimed': only a reservation made before this time; 0 = any),
--      forget ('1': the owner, closing its final order, drops the record once released: records of
--      released orders would otherwise pile up forever; the order's row answers for it from then on),
--      orderFailed ('1': the order's row is FAILED, for a reason of ours, not its shopper's: the owner gives its units
--      back even if sold (Redis lost them after the payment, say); the admission that bought it is unspent again while
--      it has not expired and the shopper holds no newer place)
-- Returns RELEASED | ALREADY_RELEASED | SOLD | NOT_FOUND, and with mode 'unclaimed' also CLAIMED
-- (the order's workflow owns it) or TOO_RECENT. Idempotent: the record's state moves to X exactly
-- once, so stock comes back once however often (or concurrently) this is called. Every caller releases by what the
-- order's row says (CANCELLED or FAILED), so a release is never undone.
local sale, users, res, pending, inputs, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local orderNo = ARGV[1]
local mode = ARGV[3]
if mode == nil or mode == '' then
  mode = 'owner'
end
local reservedBefore = tonumber(ARGV[4]) or 0
local forget = ARGV[5] == '1' and mode == 'owner'
local orderFailed = ARGV[6] == '1'
local line, pre, places, batches, use, used = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]

-- Undoes reserve.lua's spending of the shopper's admission: its batch still out (line_tick.lua has not counted it
-- expired) and the shopper's current place the one it admitted.
local function giveAdmissionBack(userId)
  if not (orderFailed and used and redis.call('EXISTS', line) == 1) then return end
  local spent = redis.call('HGET', used, userId)
  if not spent then return end
  local place = redis.call('HGET', places, userId)
  local position = tonumber(place)
  if place == 'P' then
    local rank = redis.call('ZRANK', pre, userId)
    position = rank and (rank + 1)
  end
  if position == nil or tostring(position) ~= spent then return end
  local batch = redis.call('ZRANGEBYSCORE', batches, position, '+inf', 'LIMIT', 0, 1)[1]
  if not batch then return end
  local from, to = string.match(batch, '^(%d+):(%d+):')
  if tonumber(from) >= position then return end
  redis.call('HDEL', used, userId)
  redis.call('HINCRBY', use, to, -1)
  redis.call('HINCRBY', line, 'consumed', -1)
end

-- The order will never be started (again) for these units.
local function dropPromise()
  if pending and inputs then
    redis.call('ZREM', pending, orderNo)
    redis.call('HDEL', inputs, orderNo)
  end
end

local record = redis.call('HGET', res, orderNo)
if not record then
  dropPromise()
  return 'NOT_FOUND'
end

-- userId may itself contain '|': the greedy middle capture is safe because the last two fields
-- are always digits.
local state, userId, quantity, reservedAt = string.match(record, '^(%u)|(.*)|(%d+)|(%d+)$')
if not state then
  return redis.error_reply('ERR release: malformed reservation record for ' .. orderNo)
end

if state == 'X' then
  dropPromise()
  if forget then
    redis.call('HDEL', res, orderNo)
  end
  return 'ALREADY_RELEASED'
end
if state == 'S' and not (mode == 'owner' and orderFailed) then
  -- A sold unit goes back only once its order's row failed (Redis follows the row: docs/fault-tolerance.md, "One
  -- close"); a cancel's release never undoes a payment.
  dropPromise()
  return 'SOLD'
end
if mode == 'unclaimed' then
  -- Only the owner releases a claimed reservation: the API and the reconciler never race it.
  if state == 'C' then
    return 'CLAIMED'
  end
  if reservedBefore > 0 and tonumber(reservedAt) >= reservedBefore then
    return 'TOO_RECENT'
  end
elseif mode ~= 'owner' then
  return redis.error_reply('ERR release: mode must be owner or unclaimed')
end

quantity = tonumber(quantity)
redis.call('HINCRBY', sale, 'available', quantity)
redis.call('HINCRBY', sale, state == 'S' and 'sold' or 'reserved', -quantity)
-- Drop the user's entry at 0 so the users hash only lists current holders.
if redis.call('HINCRBY', users, userId, -quantity) <= 0 then
  redis.call('HDEL', users, userId)
end
if holds then
  local kept = {}
  for held in string.gmatch(redis.call('HGET', holds, userId) or '', '%S+') do
    if held ~= orderNo then
      kept[#kept + 1] = held
    end
  end
  if #kept == 0 then
    redis.call('HDEL', holds, userId)
  else
    redis.call('HSET', holds, userId, table.concat(kept, ' '))
  end
end
-- The record is kept (as X) so a repeated release is recognised instead of reported NOT_FOUND.
if forget then
  redis.call('HDEL', res, orderNo)
else
  redis.call('HSET', res, orderNo, 'X' .. string.sub(record, 2))
end
dropPromise()
giveAdmissionBack(userId)
-- Stock came back: bump the sale's generation and tell every API instance, so a local
-- "sold out" flag set before this (at a lower generation) is dropped and never hides the unit.
local generation = redis.call('HINCRBY', sale, 'returned', 1)
if ARGV[2] and ARGV[2] ~= '' then
  redis.call('PUBLISH', 'flash:stock-returned', ARGV[2] .. '\n' .. generation)
end
return 'RELEASED'
