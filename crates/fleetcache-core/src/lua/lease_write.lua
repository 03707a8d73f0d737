-- Writes an entry and releases its lease when the caller still holds it, atomically.
-- KEYS = [entry, lease] (one {hash} slot), then, for a page or route entry of the singular
--        handler on a single Redis, [meta, channel] of the tag state: the write is announced
--        there (docs/decisions/0031-page-entries-in-the-tier-by-push.md)
-- ARGV = [px, token, value]
-- Returns 1 when the lease was released, 0 when it had expired or belongs to another holder.
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
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
if KEYS[4] then
  announce(KEYS[3], KEYS[4], KEYS[1])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
