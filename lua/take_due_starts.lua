-- Hands the promised orders of one sale that are due to be started to the sale's one starter.
-- KEYS[1] sale:{SKU}:pending (ZSET orderNo -> when it may be started, Redis clock ms),
-- KEYS[2] sale:{SKU}:inputs (HASH orderNo -> workflow input JSON), KEYS[3] sale:{SKU}:starter (the lease)
-- ARGV owner (the starter's id), leaseMs, limit, recheckMs
-- Returns { leased (1 | 0), promises not started yet (ZCARD), orderNo, input, orderNo, input, ... }.
--
-- One starter per sale at a time: the lease is taken (or renewed by its holder) in the same step
-- that hands the entries out, oldest due first. Each entry handed out is pushed `recheckMs` into the
-- future, so it is not handed out again while its start is on its way; once the order's workflow
-- claims its reservation (claim.lua) the entry is gone, and if the start failed the starter brings
-- it forward again (promise_entry.lua).
local pending, inputs, lease = KEYS[1], KEYS[2], KEYS[3]
local owner, leaseMs, limit, recheckMs = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if owner == nil or owner == '' or leaseMs == nil or leaseMs < 1 or limit == nil or limit < 0 or recheckMs == nil or recheckMs < 0 then
  return redis.error_reply('ERR take_due_starts: bad arguments')
end

local holder = redis.call('GET', lease)
if holder and holder ~= owner then
  return { 0, redis.call('ZCARD', pending) }
end
redis.call('SET', lease, owner, 'PX', leaseMs)

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local reply = { 1, redis.call('ZCARD', pending) }
if limit == 0 then
  return reply
end
for _, orderNo in ipairs(redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, limit)) do
  local input = redis.call('HGET', inputs, orderNo)
  if input then
    redis.call('ZADD', pending, now + recheckMs, orderNo)
    reply[#reply + 1] = orderNo
    reply[#reply + 1] = input
  else
    -- No input (its units were given back or sold meanwhile): nothing left to start.
    redis.call('ZREM', pending, orderNo)
  end
end
return reply
