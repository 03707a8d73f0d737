-- Writes a page or route entry of the singular handler and announces the write on the tag
-- state's channel, atomically (docs/decisions/0031-page-entries-in-the-tier-by-push.md): in
-- place of a plain SET, of lease_write.lua and of seed_write.lua, whose rules it keeps.
-- KEYS = [entry, meta, channel, lease (mode 'l' only)] (meta and channel: the tag state's, in
--        its {prefix} slot; the entry is in another slot: single Redis only, never Cluster)
-- ARGV = [px, mode, arg, id, value] (id: this write's page-write id, unique to it: the
--        host's random seed and its count of writes)
--   mode '':  a plain write; returns 1.
--   mode 'l': releases the lease KEYS[4] when arg (the caller's token) still holds it, as
--             lease_write.lua; returns 1 when released, else 0.
--   mode 's': a seed, stored unless the stored envelope was created at or after arg (ms), as
--             seed_write.lua; returns 1 when stored, 0 when the stored entry was kept (then
--             nothing is announced).
local r, k, m, v, t = redis.call, KEYS[1], ARGV[2], ARGV[5], KEYS[2]
if m == 's' then
  local h = r('GETRANGE', k, 0, 23)
  -- The envelope's creation time: an f64, little-endian, at offset 16.
  if #h == 24 and h:sub(1, 4) == 'FLCE' and struct.unpack('<d', h:sub(17)) >= tonumber(ARGV[3]) then
    return 0
  end
end
r('SET', k, v, 'PX', ARGV[1])
-- The write counts in the page-write sequence of the tag state's meta hash (pver, and pvid,
-- the id of the last one only), not as a version of the tag state: page writes neither use up
-- the window of tag version ids a pull checks nor the versions a process applies between
-- pulls. A process that follows by push and misses the announcement sees a gap in the
-- sequence (the next announcement's number, or its next pull's pver and pvid). The id, the
-- host's for this write (its process's random seed and a count), tells this write from
-- another that reused the number after a failover or FLUSHALL lost this one, even one of the
-- same bytes (a seed again). HSETNX of the epoch: a state flushed since changes epoch on its
-- first write of either kind. SPUBLISH needs Redis 7.0+ and the channel in the ACL: without
-- them the write still counts, and the followers' next pull finds the gap. Lengths and
-- numbers are integers far below 1e14, which Lua prints exactly.
local id = 'w' .. ARGV[4]
r('HSETNX', t, 'epoch', id)
local n = r('HINCRBY', t, 'pver', 1)
-- The id of the write this one follows, last: a follower that missed an announcement of a
-- number a rollback reused tells it by that id (older followers take it for a key).
local prev = r('HGET', t, 'pvid') or ''
r('HSET', t, 'pvid', id)
local msg = ''
for _, s in ipairs({ 'p', r('HGET', t, 'epoch'), '' .. n, id, k, prev }) do
  msg = msg .. #s .. ':' .. s .. ','
end
redis.pcall('SPUBLISH', KEYS[3], msg)
if m == 'l' then
  if r('GET', KEYS[4]) == ARGV[3] then
    r('DEL', KEYS[4])
    return 1
  end
  return 0
end
return 1
