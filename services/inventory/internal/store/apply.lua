-- Applies a batch of stock updates to one shard atomically.
-- KEYS: levels hash, products hash, outbox stream[, chunk idempotency key]
-- ARGV: now_ms, min_quantity, idempotency_ttl_s, then the outbox entry format
--       (store.entryFormat: the seven field names, the values separator and
--       the restock mark), then per update:
--       sku, region, quantity, product_json|'', delivery_json|'', traceparent|''
-- Returns "prev,episode,restock;..." (one triple per update). With a chunk
-- idempotency key that already exists, applies nothing and returns its stored
-- answer prefixed with '=' (store.replayMark): an earlier attempt applied it.
local levels, products, outbox, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, minq, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fk, fr, fv, fx, fpr, fd, ftp = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local sep, mark = ARGV[11], ARGV[12]
if idem then
  local done = redis.call('GET', idem)
  if done then return '=' .. done end
end
local out = {}
for b = 13, #ARGV, 6 do
  local sku, region, q = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2])
  local prod, deliv, tp = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local field = sku .. '|' .. region
  local cur = redis.call('HGET', levels, field)
  local pq, ep, armed = 0, 0, 1
  if cur then
    local a, e, r = string.match(cur, '^(%-?%d+):(%d+):(%d)$')
    pq, ep, armed = tonumber(a), tonumber(e), tonumber(r)
  end
  if prod ~= '' then redis.call('HSET', products, sku, prod) end
  -- the transition rule (internal/stock.Apply)
  local na = armed
  if q <= 0 then na = 1 end
  local restock = 0
  if na == 1 and q > 0 and q >= minq then
    restock = 1
    na = 0
    ep = ep + 1
  end
  if (not cur) or q ~= pq or na ~= armed then
    redis.call('HSET', levels, field, q .. ':' .. ep .. ':' .. na)
  end
  if (not cur) or q ~= pq or restock == 1 then
    -- the entry store.EncodeOutboxEntry describes
    local v = q .. sep .. pq .. sep .. ep .. sep .. now
    if restock == 1 then
      if prod == '' then prod = redis.call('HGET', products, sku) or '' end
      redis.call('XADD', outbox, '*', fk, sku, fr, region, fv, v, fx, mark, fpr, prod, fd, deliv, ftp, tp)
    elseif tp ~= '' then
      redis.call('XADD', outbox, '*', fk, sku, fr, region, fv, v, ftp, tp)
    else
      redis.call('XADD', outbox, '*', fk, sku, fr, region, fv, v)
    end
  end
  out[#out + 1] = pq .. ',' .. ep .. ',' .. restock
end
local res = table.concat(out, ';')
if idem then redis.call('SET', idem, res, 'EX', ttl) end
return res
