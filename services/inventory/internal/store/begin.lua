-- Starts (or answers) an idempotent request.
-- KEYS: the request's idempotency record (a hash: s=state i|d, h=body hash,
--       l=lease end ms, c=status code, b=response body)
-- ARGV: body hash, now_ms, lease_ms, ttl_ms
-- Returns {'go'} (proceed), {'busy'} (another attempt holds the lease),
-- {'mismatch'} (the key was used with another body), or {'done', code, body}.
local k = KEYS[1]
local h, now, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local v = redis.call('HMGET', k, 's', 'h', 'l', 'c', 'b')
if v[1] then
  if v[2] ~= h then return {'mismatch'} end
  if v[1] == 'd' then return {'done', v[4], v[5]} end
  if tonumber(v[3]) > now then return {'busy'} end
end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'i', 'h', h, 'l', string.format('%d', now + lease))
redis.call('PEXPIRE', k, ttl)
return {'go'}
