-- Releases a lease without writing (the regeneration produced nothing to store).
-- KEYS = [lease], ARGV = [token]. Returns 1 when released, 0 when not the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
