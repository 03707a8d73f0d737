-- Stores a seeded entry (`fleetcache seed`) unless the entry already there is as new or newer,
-- so seeding never moves a page backwards. The envelope's creation time decides, as in
-- lease_acquire.lua; anything else at the key (no entry, another format) is replaced.
-- KEYS = [entry]
-- ARGV = [px, created_ms, value]  (created: the creation time stamped in `value`)
-- Returns 1 when stored, 0 when the stored entry was kept.
local head = redis.call('GETRANGE', KEYS[1], 0, 23)
if string.len(head) == 24 and string.sub(head, 1, 4) == 'FLCE' then
  -- The envelope's creation time: an f64, little-endian, at offset 16.
  local ts = struct.unpack('<d', string.sub(head, 17, 24))
  if ts >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
return 1
