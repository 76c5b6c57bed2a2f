-- Puts a waiting line in front of a sale, once (with the sale: src/redis/sales.ts calls it right after define_sale.lua).
-- KEYS[1] sale:{SKU}        HASH the sale (gets `line` = 1, so a checkout knows the sale wants an admission)
-- KEYS[2] sale:{SKU}:line   HASH the line's settings and counters (see line_tick.lua)
-- ARGV admissionsPerSecond, admissionTtlMs, preQueueOpensMs (0 = at once), startsMs (the sale's start, 0 = none:
--      no pre-queue), seed (secret until the start), seedHash (SHA-256 of the seed, published from the first moment)
-- Returns 1 when created, 2 when this same line is there already (a create retried), 0 when another one is.
local sale, line = KEYS[1], KEYS[2]
for i = 1, 4 do
  local n = tonumber(ARGV[i])
  if n == nil or n < 0 or n ~= math.floor(n) then
    return redis.error_reply('ERR line_define: ARGV[' .. i .. '] must be a non-negative integer')
  end
end
if tonumber(ARGV[1]) < 1 or ARGV[5] == '' or ARGV[6] == '' then
  return redis.error_reply('ERR line_define: a rate of at least 1, a seed and its hash are required')
end
if redis.call('EXISTS', line) == 1 then
  local defined = redis.call('HMGET', line, 'rate0', 'ttl', 'opens', 'starts', 'seedHash')
  if tonumber(defined[1]) == tonumber(ARGV[1]) and tonumber(defined[2]) == tonumber(ARGV[2])
    and tonumber(defined[3]) == tonumber(ARGV[3]) and tonumber(defined[4]) == tonumber(ARGV[4]) then
    return 2
  end
  return 0
end
local clock = redis.call('TIME')
redis.call('HSET', line,
  'defined', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000),
  'rate', ARGV[1], 'rate0', ARGV[1], 'ttl', ARGV[2], 'opens', ARGV[3], 'starts', ARGV[4],
  'seed', ARGV[5], 'seedHash', ARGV[6],
  'paused', 0, 'served', 0, 'next', 0, 'tickAt', 0, 'carry', 0,
  'admitted', 0, 'consumed', 0, 'givenBack', 0, 'expiredThrough', 0, 'epoch', 0, 'epochReason', '')
redis.call('HSET', sale, 'line', 1)
return 1
