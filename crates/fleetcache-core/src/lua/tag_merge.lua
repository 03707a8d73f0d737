-- fleetcache TAG_MERGE: give the shared tag state back records it lost (docs/internals.md,
-- "Merge script"). A process that finds, after Redis was flushed, restarted empty or failed
-- over, that the state lacks revalidations it knew of sends their records here.
-- KEYS: state (HASH tag -> record), log (ZSET tag -> version), meta (HASH epoch, ver);
--       all three share the {<prefix>} hash slot.
-- ARGV: epoch_candidate, tag, record, tag, record, ... (no pair: the call only makes the
--       meta hash anew, for a reader that loaded records without one, tag_refresh.lua)
-- Each record is merged field by field as TagRecord::merge does in
-- crates/fleetcache-core/src/tags.rs (max of stale, expired and updated_at; the stronger of
-- the two scheduled expiries), so a merge never weakens what the state holds, and sending
-- the same records twice changes nothing but the version.
-- Reply: the netstrings epoch, ver, vid, 0, like TAG_UPDATE.

if #ARGV % 2 ~= 1 or ARGV[1] == '' then
  return redis.error_reply('ERR fleetcache TAG_MERGE: bad arguments')
end
local state, log, meta = KEYS[1], KEYS[2], KEYS[3]
local candidate = ARGV[1]

local function int(x)
  return string.format('%.0f', x)
end

local function netstring(s)
  return int(#s) .. ':' .. s .. ','
end

local function parse(raw)
  if not raw then
    return nil
  end
  local a, b, c, d, e = string.match(raw, '^(%d+),(%d+),(%d+),(%d+),(%d+)$')
  if not a then
    return nil
  end
  return { tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e) }
end

-- Check every record before writing any: a malformed one refuses the whole call.
for i = 2, #ARGV, 2 do
  if not parse(ARGV[i + 1]) then
    return redis.error_reply('ERR fleetcache TAG_MERGE: bad record for ' .. ARGV[i])
  end
end

-- No record, over a meta hash with an epoch and a version (another reader's merge made it
-- anew first, or a page write and an update): nothing to write, the state as it is replies. A
-- version more over no log would read as a log lost (below), and each such merge, making the
-- keys a new state, would have every reader load again.
if #ARGV == 1 then
  local e, v = redis.call('HGET', meta, 'epoch'), redis.call('HGET', meta, 'ver')
  if e and v then
    return netstring(e) .. netstring(v) .. netstring(redis.call('HGET', meta, 'v:' .. v) or '')
      .. netstring('0')
  end
end

-- A state hash or log gone under versions (tag_refresh.lua says how it shows): the keys become
-- a new state of what is left, as after a flush; written over, the loss would hide behind
-- this call's own tags.
local top = redis.call('ZRANGE', log, -1, -1)[1]
local probe = not top and redis.call('HSCAN', state, '0', 'COUNT', 1)
if (top and not redis.call('HGET', state, top)) or (probe and (probe[1] ~= '0'
    or #probe[2] > 0 or tonumber(redis.call('HGET', meta, 'ver') or '0') > 0)) then
  redis.call('DEL', log)
  redis.call('HDEL', meta, 'ver')
  redis.call('HSET', meta, 'epoch', candidate)
end
redis.call('HSETNX', meta, 'epoch', candidate)
-- No version yet over a log with scores (its meta hash lost alone): versions go on above them,
-- so that every log score is a version of this state (pruning, oldest first, is not held up
-- behind young tags of low versions). A whole score below 1e17 reads back as digits. With it,
-- the sweep of records left without a log score, which the next updates make (tag_update.lua,
-- which says why a pass under way is marked '+').
if not redis.call('HGET', meta, 'ver') then
  local s = redis.call('HGET', meta, 'sweep')
  redis.call('HSET', meta, 'ver', redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2] or 0,
    'sweep', s and s:match('^[^+]*') .. '+' or '0')
end
local ver = redis.call('HINCRBY', meta, 'ver', 1)
local epoch = redis.call('HGET', meta, 'epoch')
redis.call('HSET', meta, 'v:' .. int(ver), candidate)
redis.call('HDEL', meta, 'v:' .. int(ver - 1024))

for i = 2, #ARGV, 2 do
  local tag = ARGV[i]
  local r = parse(ARGV[i + 1])
  local s = parse(redis.call('HGET', state, tag)) or { 0, 0, 0, 0, 0 }
  local stale = math.max(s[1], r[1])
  local expired = math.max(s[2], r[2])
  local pending_at, pending_exp = s[3], s[4]
  if r[4] > 0 then
    if pending_exp > 0 then
      pending_at = math.max(pending_at, r[3])
      pending_exp = math.min(pending_exp, r[4])
    else
      pending_at, pending_exp = r[3], r[4]
    end
  end
  local updated_at = math.max(s[5], r[5])
  redis.call('HSET', state, tag, int(stale) .. ',' .. int(expired) .. ',' .. int(pending_at)
    .. ',' .. int(pending_exp) .. ',' .. int(updated_at))
  redis.call('ZADD', log, int(ver), tag)
end

return netstring(epoch) .. netstring(int(ver)) .. netstring(candidate) .. netstring('0')
