-- Starts (or answers) an idempotent request.
-- KEYS: the request's idempotency record (a hash: s=state i|d, h=body hash,
--       l=claim end ms, a=the claiming attempt's token, c=status code,
--       b=response body)
-- ARGV: body hash, now_ms, claim end ms, ttl_ms, attempt token
-- Returns {'go'} (proceed), {'busy'} (another attempt holds the claim),
-- {'mismatch'} (the key was used with another body), or {'done', code, body}.
-- The claim end is absolute, the attempt's own deadline: a claim that a
-- stalled Redis runs late ends no later than that attempt could act.
local k = KEYS[1]
local h, now, till, ttl, tok = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local v = redis.call('HMGET', k, 's', 'h', 'l', 'c', 'b')
if v[1] then
  if v[2] ~= h then return {'mismatch'} end
  if v[1] == 'd' then return {'done', v[4], v[5]} end
  if tonumber(v[3]) > now then return {'busy'} end
end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'i', 'h', h, 'l', till, 'a', tok)
redis.call('PEXPIRE', k, ttl)
return {'go'}
