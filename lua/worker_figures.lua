-- The workers' figures board of one task queue (src/inventory/worker-figures.ts): a hash of worker id →
-- "<expires at, ms>|<figures, JSON>". Expiry is judged by Redis's clock, so no worker's or API's clock decides
-- whether a worker still reports; a worker that stopped publishing is left out, then dropped.
-- KEYS[1] flash:worker-figures:<task queue>
-- ARGV 'put', worker id, figures (JSON), ttlMs: publishes; returns 1.
-- ARGV 'read': the figures still fresh, as a flat list of worker id, figures.
local board, action = KEYS[1], ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local entries = redis.call('HGETALL', board)
if action == 'put' then
  local worker, figures, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4]) or 0
  if ttl <= 0 then
    return redis.error_reply('ERR worker_figures: ttlMs must be positive')
  end
  for i = 1, #entries, 2 do
    local expires = tonumber(string.match(entries[i + 1], '^(%d+)|'))
    if expires == nil or expires <= now then
      redis.call('HDEL', board, entries[i])
    end
  end
  redis.call('HSET', board, worker, (now + ttl) .. '|' .. figures)
  -- Gone with the last worker: nothing is left behind by a task queue no worker polls any more.
  redis.call('PEXPIRE', board, ttl * 4)
  return 1
end
if action ~= 'read' then
  return redis.error_reply('ERR worker_figures: action must be put or read')
end
local fresh = {}
for i = 1, #entries, 2 do
  local expires, figures = string.match(entries[i + 1], '^(%d+)|(.*)$')
  if expires ~= nil and tonumber(expires) > now then
    fresh[#fresh + 1] = entries[i]
    fresh[#fresh + 1] = figures
  end
end
return fresh
