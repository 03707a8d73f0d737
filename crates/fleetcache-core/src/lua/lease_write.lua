-- Writes an entry and releases its lease when the caller still holds it, atomically.
-- KEYS = [entry, lease] (one {hash} slot)
-- ARGV = [px, token, value]
-- Returns 1 when the lease was released, 0 when it had expired or belongs to another holder.
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
