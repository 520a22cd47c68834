-- Releases an idempotent request's claim after its attempt failed, so a
-- retry need not wait for the claim to run out.
-- KEYS: the request's idempotency record (see begin.lua)
-- ARGV: the attempt's token
-- Deletes the record only while it is still this attempt's claim: the
-- release of an attempt that timed out may reach a stalled Redis after a
-- retry has claimed the key or stored the answer, and must not remove those.
local v = redis.call('HMGET', KEYS[1], 's', 'a')
if v[1] == 'i' and v[2] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
