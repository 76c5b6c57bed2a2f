-- Reserves units of one SKU for one user: the single atomic step of a checkout.
-- KEYS[1] sale:{SKU}        HASH stock, available, reserved, sold, limit, price, starts, ends
-- KEYS[2] sale:{SKU}:users  HASH userId -> units held (reserved + sold)
-- KEYS[3] sale:{SKU}:res    HASH orderNo -> "state|userId|quantity|reservedAtMs"
-- KEYS[4] sale:{SKU}:idem   HASH idempotency field -> orderNo
-- KEYS[5] sale:{SKU}:cancels HASH userId -> orders the shopper cancelled
-- KEYS[6] sale:{SKU}:pending ZSET orderNo -> when a starter may start it (Redis clock, ms): the promises not started yet
-- KEYS[7] sale:{SKU}:inputs  HASH orderNo -> the order's workflow input (JSON), kept while its units are held
-- KEYS[8] sale:{SKU}:holds   HASH userId -> the orders holding the user's units ("orderNo orderNo ..."), for
--                            PURCHASE_LIMIT_EXCEEDED to name them (a shopper may hold one whose 202 never reached them)
-- KEYS[9..14] the sale's line (line_tick.lua): :line, :line:pre, :line:places, :line:batches, :line:use, :line:used.
--                            A sale with a line takes a checkout only with an admission: the shopper's own place,
--                            admitted, not expired, not spent; this step spends it with the reservation it makes.
-- ARGV orderNo, userId, quantity, reservedAtMs (the API's clock, kept in the record), idempotencyKey ('' = none),
--      maxCancels (0 = no limit), cutoffMs (Redis clock; 0 = none), order input JSON ('' = no promise),
--      handoffMs (how long a waiting checkout's own start has before the owner may start the order; 0 for the
--      polling checkout, which starts nothing), wake channel ('' = none) and the SKU it is told,
--      the admission's position ('' = none; the API checked the admission's signature, owner and SKU)
-- Returns { code, orderNo or '', priceCents or '', reservation record or '', generation (SOLD_OUT), start input
-- (DUPLICATE), the orders holding the user's units (LIMIT_EXCEEDED) } with code RESERVED | DUPLICATE | LATE | NO_SALE | NOT_ACTIVE | TOO_MANY_CANCELS | LIMIT_EXCEEDED |
-- SOLD_OUT | NOT_ADMITTED | ADMISSION_INVALID (not this shopper's place now) | ADMISSION_EXPIRED | ADMISSION_USED. The price and, for a DUPLICATE, the existing reservation and its recorded input come back in the same
-- round trip, so the API can start (or re-ensure) the order's workflow without reading anything else.
--
-- A reservation is a promise: the order's input goes into `inputs` and `pending` in this same step; the pipeline's
-- owner of starts (woken on the wake channel) starts it, or the reconciler does, however long Temporal is away.
-- Time comes from Redis (TIME) for every decision: the sale's window and the request's cutoff, past which
-- nothing is reserved (a reserve that waited in a stalled connection does nothing once its caller gave up).
local sale, users, res, idem, cancels, pending, inputs, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local orderNo, userId, idemKey = ARGV[1], ARGV[2], ARGV[5]
local quantity = tonumber(ARGV[3])
local reservedAt = tonumber(ARGV[4])
local cutoff = tonumber(ARGV[7]) or 0
local input, handoff = ARGV[8] or '', tonumber(ARGV[9]) or 0
local wake, sku = ARGV[10] or '', ARGV[11] or ''
local admission = ARGV[12] or ''
local line, pre, places, batches, use, used = KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- Guards against caller bugs: a zero or negative quantity would corrupt the counters.
if quantity == nil or quantity < 1 or quantity ~= math.floor(quantity) then
  return redis.error_reply('ERR reserve: quantity must be a positive integer')
end
-- reservedAtMs is stored verbatim in the record, whose parsers expect digits only.
if reservedAt == nil or not string.match(ARGV[4], '^%d+$') then
  return redis.error_reply('ERR reserve: reservedAtMs must be a non-negative integer')
end
if orderNo == '' or userId == '' then
  return redis.error_reply('ERR reserve: orderNo and userId are required')
end

-- Past the cutoff the caller has answered (or is about to answer) "unknown": do nothing at all.
if cutoff > 0 and now > cutoff then
  return { 'LATE', '', '', '' }
end

-- Nothing is written for an unknown SKU, so probing SKUs cannot create keys.
if redis.call('EXISTS', sale) == 0 then
  return { 'NO_SALE', '', '', '' }
end

-- Idempotency is scoped to (user, SKU, key). The user id is length-prefixed so that no pair of
-- (userId, key) can collide with another, whatever characters either contains. Checked before the
-- activity window and stock, so a retry of a checkout that won still gets its order after sell-out.
local idemField = nil
if idemKey ~= '' then
  idemField = string.len(userId) .. ':' .. userId .. '\n' .. idemKey
  local existing = redis.call('HGET', idem, idemField)
  if existing then
    return { 'DUPLICATE', existing, redis.call('HGET', sale, 'price'), redis.call('HGET', res, existing) or '', 0,
      redis.call('HGET', inputs, existing) or '' }
  end
end

-- An order number is reserved at most once (order numbers are unique, so this should never fire).
local sameOrder = redis.call('HGET', res, orderNo)
if sameOrder then
  return { 'DUPLICATE', orderNo, redis.call('HGET', sale, 'price'), sameOrder, 0, redis.call('HGET', inputs, orderNo) or '' }
end

local f = redis.call('HMGET', sale, 'available', 'limit', 'starts', 'ends', 'price', 'returned', 'line')
local available = tonumber(f[1]) or 0
local limit = tonumber(f[2]) or 0
local starts = tonumber(f[3]) or 0
local ends = tonumber(f[4]) or 0

-- 0 means "no bound" for either end of the window; the end is exclusive.
if (starts > 0 and now < starts) or (ends > 0 and now >= ends) then
  return { 'NOT_ACTIVE', '', '', '' }
end

-- A shopper who keeps checking out and cancelling creates a workflow, an order row and a record
-- every time: after maxCancels cancelled orders in this sale, no more checkouts for them.
local maxCancels = tonumber(ARGV[6]) or 0
if maxCancels > 0 and (tonumber(redis.call('HGET', cancels, userId)) or 0) >= maxCancels then
  return { 'TOO_MANY_CANCELS', '', '', '' }
end

-- The limit counts everything the user holds, reserved and sold, so it holds under any concurrency.
local held = tonumber(redis.call('HGET', users, userId)) or 0
if held + quantity > limit then
  return { 'LIMIT_EXCEEDED', '', '', '', 0, '', holds and redis.call('HGET', holds, userId) or '' }
end

-- Never oversell: available can only go down to 0.
-- SOLD_OUT carries the sale's stock-returned generation: an API may remember "sold out" locally
-- only until stock comes back (release.lua bumps the generation and publishes it).
if available < quantity then
  return { 'SOLD_OUT', '', '', '', tonumber(f[6]) or 0 }
end

-- A line's sale: the admission must be this shopper's place, admitted, unexpired and unspent. Checked once a unit is
-- there for the checkout, so SOLD_OUT and the limit answer everyone. `batch`: the admission batch whose count of
-- spent admissions this checkout adds to (line_tick.lua gives the rest back).
local batch = nil
if f[7] == '1' and line then
  if admission == '' then return { 'NOT_ADMITTED', '', '', '' } end
  local place = redis.call('HGET', places, userId)
  local position = nil
  if place == 'P' then
    local rank = redis.call('ZRANK', pre, userId)
    position = rank and (rank + 1)
  else
    position = tonumber(place)
  end
  if position == nil or tostring(position) ~= admission then return { 'ADMISSION_INVALID', '', '', '' } end
  local l = redis.call('HMGET', line, 'served', 'expiredThrough', 'ttl')
  if position > (tonumber(l[1]) or 0) then return { 'NOT_ADMITTED', '', '', '' } end
  if redis.call('HGET', used, userId) == admission then return { 'ADMISSION_USED', '', '', '' } end
  batch = position > (tonumber(l[2]) or 0) and redis.call('ZRANGEBYSCORE', batches, position, '+inf', 'LIMIT', 0, 1)[1]
  local at = batch and tonumber(string.match(batch, ':(%d+)$'))
  if not at or now >= at + (tonumber(l[3]) or 0) then return { 'ADMISSION_EXPIRED', '', '', '' } end
end

-- Units move from available to reserved; stock = available + reserved + sold is preserved.
redis.call('HINCRBY', sale, 'available', -quantity)
redis.call('HINCRBY', sale, 'reserved', quantity)
redis.call('HINCRBY', users, userId, quantity)
redis.call('HSET', res, orderNo, 'R|' .. userId .. '|' .. quantity .. '|' .. ARGV[4])
if idemField then
  redis.call('HSET', idem, idemField, orderNo)
end
if holds then
  local holding = redis.call('HGET', holds, userId)
  redis.call('HSET', holds, userId, holding and (holding .. ' ' .. orderNo) or orderNo)
end
if batch then
  redis.call('HSET', used, userId, admission)
  redis.call('HINCRBY', use, string.match(batch, '^%d+:(%d+):'), 1)
  redis.call('HINCRBY', line, 'consumed', 1)
end
if input ~= '' then
  -- The price is the sale's, read here: the input recorded is exactly what the order is started with.
  local order = cjson.decode(input)
  order['unitPriceCents'] = tonumber(f[5]) or 0
  redis.call('HSET', inputs, orderNo, cjson.encode(order))
  redis.call('ZADD', pending, now + handoff, orderNo)
  -- Wakes the owner of the sale's starts at once (a lost message waits for its next round).
  if wake ~= '' then
    redis.call('PUBLISH', wake, sku)
  end
end
return { 'RESERVED', orderNo, f[5], '' }
