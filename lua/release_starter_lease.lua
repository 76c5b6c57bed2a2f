-- Gives up a sale's starter lease, if `owner` holds it: a starter whose starts all failed lets
-- another process (whose Temporal may answer) take the sale over at once.
-- KEYS[1] sale:{SKU}:starter; ARGV owner. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
