-- Stores a seeded entry (`fleetcache seed`) unless the entry already there is as new or newer,
-- so seeding never moves a page backwards. The envelope's creation time decides, as in
-- lease_acquire.lua; anything else at the key (no entry, another format) is replaced.
-- KEYS = [entry], then, on a single Redis, [meta, channel] of the tag state: a stored entry
--        is announced there (docs/decisions/0031-page-entries-in-the-tier-by-push.md)
-- ARGV = [px, created_ms, value]  (created: the creation time stamped in `value`)
-- Returns 1 when stored, 0 when the stored entry was kept.
local function int(x)
  return string.format('%.0f', x)
end

local function netstring(s)
  return int(#s) .. ':' .. s .. ','
end

-- ANNOUNCE: the same block is in entry_write.lua, lease_write.lua and seed_write.lua
-- (crates/fleetcache-core/tests/lua_scripts.rs checks they agree).
-- The write is a version of the tag state without records: a process that follows the state
-- by push and misses the announcement sees a gap in the versions (the next announcement's, or
-- its next pull's), never a silent loss. The version's id tells it from another write that
-- reused the number after a failover lost this one, as the update script's epoch candidate
-- does. SPUBLISH needs Redis 7.0+ and the channel in the ACL: without them the version still
-- counts, and the followers' next pull finds the gap.
local function announce(meta, channel, key)
  local t = redis.call('TIME')
  local id = 'w' .. t[1] .. '.' .. t[2]
  redis.call('HSETNX', meta, 'epoch', id)
  local ver = redis.call('HINCRBY', meta, 'ver', 1)
  local epoch = redis.call('HGET', meta, 'epoch')
  redis.call('HSET', meta, 'v:' .. int(ver), id)
  redis.call('HDEL', meta, 'v:' .. int(ver - 1024))
  redis.pcall('SPUBLISH', channel, netstring('p') .. netstring(epoch) .. netstring(int(ver))
    .. netstring(id) .. netstring(key))
end
-- END ANNOUNCE
local head = redis.call('GETRANGE', KEYS[1], 0, 23)
if string.len(head) == 24 and string.sub(head, 1, 4) == 'FLCE' then
  -- The envelope's creation time: an f64, little-endian, at offset 16.
  local ts = struct.unpack('<d', string.sub(head, 17, 24))
  if ts >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
if KEYS[3] then
  announce(KEYS[2], KEYS[3], KEYS[1])
end
return 1
