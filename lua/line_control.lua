-- An operator pauses or resumes a sale's line, or changes its admission rate, live.
-- KEYS[1] sale:{SKU}:line
-- ARGV paused ('1', '0' or '' = unchanged), admissionsPerSecond ('' = unchanged; else an integer >= 1)
-- Returns { paused, rate, epoch, epochReason }, or an empty reply when the sale has no line.
-- Pausing or lowering the rate makes the ETAs already given wrong: the epoch moves on with the reason, so every
-- answer from then on says why a wait went up. Resuming does not count the paused time as owed admissions.
local line = KEYS[1]
if redis.call('EXISTS', line) == 0 then return {} end
local paused, rate = ARGV[1], ARGV[2]
local l = redis.call('HMGET', line, 'paused', 'rate', 'epoch', 'epochReason')
local epoch, reason = tonumber(l[3]) or 0, l[4] or ''
if rate ~= '' then
  local n = tonumber(rate)
  if n == nil or n < 1 or n ~= math.floor(n) then
    return redis.error_reply('ERR line_control: admissionsPerSecond must be an integer of at least 1')
  end
  if n < (tonumber(l[2]) or 0) then epoch, reason = epoch + 1, 'RATE_LOWERED' end
  redis.call('HSET', line, 'rate', n)
end
if paused == '1' and l[1] ~= '1' then
  epoch, reason = epoch + 1, 'PAUSED'
  redis.call('HSET', line, 'paused', 1)
elseif paused == '0' and l[1] == '1' then
  local clock = redis.call('TIME')
  redis.call('HSET', line, 'paused', 0, 'tickAt', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000),
    'carry', 0)
end
redis.call('HSET', line, 'epoch', epoch, 'epochReason', reason)
local now = redis.call('HMGET', line, 'paused', 'rate')
return { now[1], tonumber(now[2]), epoch, reason }
