-- Admits the next shoppers of a sale's line at its rate, and answers the line's state: every API process calls it
-- a few times a second and serves its shoppers' reads from the answer (no Redis call per poll).
-- KEYS[1] sale:{SKU}              HASH the sale (available, reserved, ends)
-- KEYS[2] sale:{SKU}:line         HASH rate (admissions/s), ttl (ms an admission lasts), starts, paused, served (every
--                                 position up to it is admitted), next (places taken after the start), pre (the
--                                 pre-queue's size, fixed at the start), tickAt, carry (thousandths of an admission
--                                 owed), admitted / consumed / givenBack (counters), expiredThrough (positions up to
--                                 it: admissions expired and counted), epoch and epochReason (bumped when an operator
--                                 pauses or lowers the rate: the ETAs given before no longer hold)
-- KEYS[3] sale:{SKU}:line:pre     ZSET the pre-queue
-- KEYS[4] sale:{SKU}:line:batches ZSET admission batches: score = the batch's last position, member "from:to:atMs"
-- KEYS[5] sale:{SKU}:line:use     HASH batch's last position -> admissions of the batch a checkout spent
-- Any number of callers may run it at any time: admissions follow Redis's clock since the last call, not the calls.
-- Returns { state, nowMs, served, length, rate, paused, epoch, epochReason, admitted, consumed, givenBack,
--           available, reserved, startsMs, seedHash, seed (only once the sale started), ttlMs, opensMs, definedMs,
--           soldOutAtMs (0: never sold out) } with state
--   NO_SALE | NO_LINE | PRE_QUEUE | OPEN | PAUSED | SOLD_OUT | CLOSED
local sale, line, pre, batches, use = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis.call('EXISTS', sale) == 0 then return { 'NO_SALE' } end
if redis.call('EXISTS', line) == 0 then return { 'NO_LINE' } end

local l = redis.call('HMGET', line, 'rate', 'ttl', 'starts', 'paused', 'served', 'next', 'pre', 'tickAt', 'carry',
  'admitted', 'consumed', 'givenBack', 'expiredThrough', 'epoch', 'epochReason', 'seedHash', 'seed', 'opens',
  'defined', 'soldOutAt')
local rate, ttl, starts = tonumber(l[1]) or 0, tonumber(l[2]) or 0, tonumber(l[3]) or 0
local paused, served, nextPlace = l[4] == '1', tonumber(l[5]) or 0, tonumber(l[6]) or 0
local tickAt, carry = tonumber(l[8]) or 0, tonumber(l[9]) or 0
local admitted, consumed, givenBack = tonumber(l[10]) or 0, tonumber(l[11]) or 0, tonumber(l[12]) or 0
local expiredThrough = tonumber(l[13]) or 0
local s = redis.call('HMGET', sale, 'available', 'reserved', 'ends')
local available, reserved, ends = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0

local soldOutAt = tonumber(l[20]) or 0
local function answer(state, length)
  return { state, now, served, length, rate, l[4] or '0', tonumber(l[14]) or 0, l[15] or '', admitted, consumed,
    givenBack, available, reserved, starts, l[16] or '', (starts == 0 or now >= starts) and (l[17] or '') or '', ttl,
    tonumber(l[18]) or 0, tonumber(l[19]) or 0, soldOutAt }
end

if starts > 0 and now < starts then return answer('PRE_QUEUE', redis.call('ZCARD', pre)) end
local preSize = tonumber(l[7])
if preSize == nil then
  preSize = redis.call('ZCARD', pre)
  redis.call('HSET', line, 'pre', preSize)
end
local length = preSize + nextPlace

-- Admissions whose time ran out unspent give their slot back (a few batches per call, oldest first).
local expired = redis.call('ZRANGEBYSCORE', batches, '-inf', '+inf', 'LIMIT', 0, 16)
for _, batch in ipairs(expired) do
  local from, to, at = string.match(batch, '^(%d+):(%d+):(%d+)$')
  from, to, at = tonumber(from), tonumber(to), tonumber(at)
  if at + ttl > now then break end
  givenBack = givenBack + (to - from) - (tonumber(redis.call('HGET', use, to)) or 0)
  expiredThrough = to
  redis.call('HDEL', use, to)
  redis.call('ZREM', batches, batch)
end

local state = 'OPEN'
if ends > 0 and now >= ends then state = 'CLOSED'
elseif available <= 0 then
  state = 'SOLD_OUT'
  -- The first time the line saw its units gone: the operators' time to sold out, the same for every process.
  if soldOutAt == 0 then
    soldOutAt = now
    redis.call('HSET', line, 'soldOutAt', now)
  end
elseif paused then state = 'PAUSED' end

-- Admissions not spent and not expired: each may still take a unit, so no more are out than units are left.
local outstanding = admitted - consumed - givenBack
local changed = expiredThrough ~= (tonumber(l[13]) or 0)
if state == 'OPEN' and served < length then
  -- The first call after the start counts from the start; a stall (Redis frozen, no API calling, the line empty,
  -- sold out or paused) is not made up in one burst: at most two seconds' worth are owed at once.
  local since = math.max(tickAt, starts)
  local elapsed = math.min(math.max(now - since, 0), 2000)
  local owed = carry + elapsed * rate
  local due = math.floor(owed / 1000)
  carry = owed - due * 1000
  local admit = math.min(due, length - served, math.max(available - outstanding, 0))
  if admit > 0 then
    redis.call('ZADD', batches, served + admit, served .. ':' .. (served + admit) .. ':' .. now)
    served = served + admit
    admitted = admitted + admit
  end
  changed = true
  tickAt = now
end
-- A line with nobody to admit writes nothing (each API process calls this four times a second).
if changed then
  redis.call('HSET', line, 'tickAt', tickAt, 'carry', carry, 'served', served, 'admitted', admitted,
    'givenBack', givenBack, 'expiredThrough', expiredThrough)
end
return answer(state, length)
