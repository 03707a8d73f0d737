-- Extends a lease while its holder still regenerates: compare-and-PEXPIRE.
-- KEYS = [lease], ARGV = [token, px]. Returns 1 when extended, 0 when not the caller's
-- (released, expired, or taken by another holder since).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
