-- Puts a SKU on sale, once.
-- KEYS[1] sale:{SKU}
-- ARGV stock, perUserLimit, priceCents, startsMs (0 = none), endsMs (0 = none), line ('1': the sale has a waiting
--      line, defined next by line_define.lua; set here, in the same step as the stock, so that no checkout ever
--      finds the sale open without its line: until the line exists such a checkout is refused NOT_ADMITTED)
-- Returns 1 when created; 2 when the same definition is already there (a create whose MySQL commit
-- was lost, retried: MySQL gets its row, Redis keeps what shoppers hold); 0 when another sale of
-- the SKU exists. Either way an existing sale is left untouched: re-defining a live sale must never
-- reset stock that shoppers already hold.
local sale = KEYS[1]

if redis.call('EXISTS', sale) == 1 then
  local defined = redis.call('HMGET', sale, 'stock', 'limit', 'price', 'starts', 'ends')
  for i = 1, 5 do
    if tonumber(defined[i]) ~= tonumber(ARGV[i]) then
      return 0
    end
  end
  return 2
end

-- Refuse malformed input instead of storing a sale that breaks stock = available + reserved + sold.
for i = 1, 5 do
  local n = tonumber(ARGV[i])
  if n == nil or n < 0 or n ~= math.floor(n) then
    return redis.error_reply('ERR define_sale: ARGV[' .. i .. '] must be a non-negative integer')
  end
end

-- Every unit starts available: stock = available + reserved + sold holds from the first moment.
redis.call('HSET', sale,
  'stock', ARGV[1],
  'available', ARGV[1],
  'reserved', 0,
  'sold', 0,
  'limit', ARGV[2],
  'price', ARGV[3],
  'starts', ARGV[4],
  'ends', ARGV[5])
if ARGV[6] == '1' then
  redis.call('HSET', sale, 'line', 1)
end
return 1
