-- A shopper takes their place in a sale's line: one place per shopper, the same one however often they ask.
-- KEYS[1] sale:{SKU}              HASH the sale (its end)
-- KEYS[2] sale:{SKU}:line         HASH the line (line_define.lua)
-- KEYS[3] sale:{SKU}:line:pre     ZSET userId -> fair rank (the pre-queue: joined before the start)
-- KEYS[4] sale:{SKU}:line:places  HASH userId -> 'P' (in the pre-queue) or the place's position
-- KEYS[5] sale:{SKU}:line:batches ZSET admission batches: score = last position admitted, member "from:to:atMs"
-- KEYS[6] sale:{SKU}:line:used    HASH userId -> the position whose admission a checkout spent
-- ARGV userId, fairRank (an HMAC of the shopper under the line's seed, computed by the API: an integer < 2^48)
-- Returns { code, position, joined } with code
--   PRE_QUEUE (before the start: the place is kept, its position is decided at the start; position -1)
--   PLACED    (position fixed; joined = 1 when this call made the place)
--   NO_SALE | NO_LINE | NOT_OPEN (before the pre-queue opens: position = when it opens, ms) | CLOSED
-- Nothing is written unless a place is made. A place whose admission expired unused is replaced by a new one at the
-- back of the line: the shopper missed their turn, and a line that kept it would hold its slot forever.
local sale, line, pre, places, batches, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local userId = ARGV[1]
local fairRank = tonumber(ARGV[2])
if userId == '' or fairRank == nil or fairRank < 0 or fairRank ~= math.floor(fairRank) then
  return redis.error_reply('ERR line_join: a user id and a non-negative integer rank are required')
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

if redis.call('EXISTS', sale) == 0 then return { 'NO_SALE', 0, 0 } end
if redis.call('EXISTS', line) == 0 then return { 'NO_LINE', 0, 0 } end
local ends = tonumber(redis.call('HGET', sale, 'ends')) or 0
if ends > 0 and now >= ends then return { 'CLOSED', 0, 0 } end
local l = redis.call('HMGET', line, 'opens', 'starts', 'pre', 'served', 'ttl', 'expiredThrough')
local opens, starts = tonumber(l[1]) or 0, tonumber(l[2]) or 0
if opens > 0 and now < opens then return { 'NOT_OPEN', opens, 0 } end
local served, ttl, expiredThrough = tonumber(l[4]) or 0, tonumber(l[5]) or 0, tonumber(l[6]) or 0

local place = redis.call('HGET', places, userId)
if place then
  if place == 'P' and now < starts then return { 'PRE_QUEUE', -1, 0 } end
  local position = place == 'P' and (redis.call('ZRANK', pre, userId) + 1) or tonumber(place)
  -- Kept unless admitted, not spent, and expired (its batch given back, or past its time).
  local keep = position > served or redis.call('HGET', used, userId) == tostring(position)
  if not keep and position > expiredThrough then
    local batch = redis.call('ZRANGEBYSCORE', batches, position, '+inf', 'LIMIT', 0, 1)[1]
    local at = batch and tonumber(string.match(batch, ':(%d+)$'))
    keep = at ~= nil and now < at + ttl
  end
  if keep then return { 'PLACED', position, 0 } end
end

if starts > 0 and now < starts then
  redis.call('ZADD', pre, fairRank, userId)
  redis.call('HSET', places, userId, 'P')
  return { 'PRE_QUEUE', -1, 1 }
end
-- The pre-queue is frozen by the first look after the start: its ranks are the first positions, in HMAC order.
local preSize = tonumber(l[3])
if preSize == nil then
  preSize = redis.call('ZCARD', pre)
  redis.call('HSET', line, 'pre', preSize)
end
local position = preSize + redis.call('HINCRBY', line, 'next', 1)
redis.call('HSET', places, userId, position)
return { 'PLACED', position, 1 }
