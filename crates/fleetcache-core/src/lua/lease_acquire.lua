-- Takes the regeneration lease of one entry, unless a newer entry has landed since the
-- caller read it (then the caller reads again instead of regenerating a second time).
-- KEYS = [entry, lease] (one {hash} slot)
-- ARGV = [token, px, seen_timestamp_ms]  (seen: the creation time of the entry the caller
--                                          judged stale, or -1 when it found none)
-- Returns 1: the lease is the caller's; 0: another holder has it; 2: a newer entry is there.
local head = redis.call('GETRANGE', KEYS[1], 0, 23)
if string.len(head) == 24 and string.sub(head, 1, 4) == 'FLCE' then
  -- The envelope's creation time: an f64, little-endian, at offset 16.
  local ts = struct.unpack('<d', string.sub(head, 17, 24))
  if ts > tonumber(ARGV[3]) then
    return 2
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
