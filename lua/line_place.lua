-- A shopper's place in a sale's line, read once by an API process (then kept in its memory: a place does not move).
-- KEYS[1] sale:{SKU}:line, KEYS[2] :line:pre, KEYS[3] :line:places, KEYS[4] :line:batches, KEYS[5] :line:used
-- ARGV userId
-- Returns { kind, position, admittedAtMs, spent } with kind NONE | PRE_QUEUE (before the start; position -1) | PLACED;
-- admittedAtMs: when the position was admitted (0: not yet; -1: admitted, and its admission expired);
-- spent: 1 when a checkout spent this position's admission.
local line, pre, places, batches, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local userId = ARGV[1]
local place = redis.call('HGET', places, userId)
if not place then return { 'NONE', 0, 0, 0 } end
local l = redis.call('HMGET', line, 'starts', 'served', 'expiredThrough', 'ttl')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local starts = tonumber(l[1]) or 0
if place == 'P' and now < starts then return { 'PRE_QUEUE', -1, 0, 0 } end
local position = place == 'P' and (redis.call('ZRANK', pre, userId) + 1) or tonumber(place)
local spent = redis.call('HGET', used, userId) == tostring(position) and 1 or 0
if position > (tonumber(l[2]) or 0) then return { 'PLACED', position, 0, spent } end
if position <= (tonumber(l[3]) or 0) then return { 'PLACED', position, -1, spent } end
local batch = redis.call('ZRANGEBYSCORE', batches, position, '+inf', 'LIMIT', 0, 1)[1]
local at = batch and tonumber(string.match(batch, ':(%d+)$'))
return { 'PLACED', position, at or -1, spent }
