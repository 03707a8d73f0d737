-- fleetcache TAG_UPDATE: record revalidations of tags (docs/internals.md, "Update script").
-- KEYS: state (HASH tag -> record), log (ZSET tag -> version), meta (HASH epoch, ver);
--       all three share the {<prefix>} hash slot. An optional fourth, the announcement
--       channel (same slot), makes the update publish what it wrote there with SPUBLISH
--       (Redis 7.0+, Valkey), for the processes that follow the state by push.
-- ARGV: now_ms, prune_after_ms, epoch_candidate, mode ('x' expire now | 's' stale),
--       expire_ms ('' = no scheduled expiry), tag...
-- epoch_candidate is a fresh random token per call: it becomes the epoch when the state is
-- new, and it is recorded as the id of the version this update makes (meta field v:<ver>),
-- so a reader can tell a version it saw from another update that reused the number after a
-- failover lost the first one.
-- The rules mirror TagRecord::apply in crates/fleetcache-core/src/tags.rs; a test runs both.
-- Numbers are written with %.0f: tostring() would print 14 significant digits only.

if #ARGV < 5 then
  return redis.error_reply('ERR fleetcache TAG_UPDATE: expected at least 5 arguments')
end
local state, log, meta, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local prune_after = tonumber(ARGV[2])
local candidate = ARGV[3]
local mode = ARGV[4]
local expire_ms = nil
if ARGV[5] ~= '' then
  expire_ms = tonumber(ARGV[5])
end
if not now or not prune_after or candidate == '' or (mode ~= 'x' and mode ~= 's')
    or (ARGV[5] ~= '' and not expire_ms) then
  return redis.error_reply('ERR fleetcache TAG_UPDATE: bad arguments')
end
now = math.ceil(now)
if expire_ms then
  expire_ms = math.ceil(expire_ms)
end

local function int(x)
  return string.format('%.0f', x)
end

local function netstring(s)
  return int(#s) .. ':' .. s .. ','
end

-- A missing or foreign record reads as "nothing known": it is rewritten in canonical form.
local function parse(raw)
  if not raw then
    return 0, 0, 0, 0, 0
  end
  local a, b, c, d, e = string.match(raw, '^(%d+),(%d+),(%d+),(%d+),(%d+)$')
  if not a then
    return 0, 0, 0, 0, 0
  end
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)
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
-- behind young tags of low versions). A whole score below 1e17 reads back as digits.
-- No version is also every state made anew (above), a flush and a meta hash lost alone: records
-- may be left without a log score, which pruning (it walks the log) never reaches. The field
-- sweep (an HSCAN cursor) has the updates walk the state hash (below); a pass under way runs
-- to its end, marked '+' for one more: started over at each loss, it would walk the same first
-- buckets again and again under losses that come faster than a pass.
if not redis.call('HGET', meta, 'ver') then
  local s = redis.call('HGET', meta, 'sweep')
  redis.call('HSET', meta, 'ver', redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2] or 0,
    'sweep', s and s:match('^[^+]*') .. '+' or '0')
end
local ver = redis.call('HINCRBY', meta, 'ver', 1)
local epoch = redis.call('HGET', meta, 'epoch')
-- The id of the version this one follows, announced with it: a reader that applies the
-- announcement as its next version checks it followed the version the reader knows, not one
-- a rollback gave that number to ('' when none is recorded).
local prev = redis.call('HGET', meta, 'v:' .. int(ver - 1)) or ''
-- The ids of the last 1024 versions: enough for any reader that refreshes per request.
redis.call('HSET', meta, 'v:' .. int(ver), candidate)
redis.call('HDEL', meta, 'v:' .. int(ver - 1024))

-- Delay of the expiry this update asks for: 0 = now, nil = none.
local delay = nil
if mode == 'x' then
  delay = 0
else
  delay = expire_ms
end

-- The announcement: 'a', epoch, ver, vid, prev (above), then tag, record for every tag written,
-- and every one the sweep (below) logs; the same records a refresh from version ver - 1 would
-- return.
local announced = {}

for i = 6, #ARGV do
  local tag = ARGV[i]
  local stale, expired, pending_at, pending_exp, updated_at = parse(redis.call('HGET', state, tag))
  -- 1. A scheduled expiry that is due becomes a plain one.
  if pending_exp > 0 and pending_exp <= now then
    if pending_at > expired then
      expired = pending_at
    end
    pending_at, pending_exp = 0, 0
  end
  -- 3./4. Durations given: stale now.
  if mode == 's' and now > stale then
    stale = now
  end
  if delay ~= nil then
    if delay <= 0 then
      -- 2. and expire <= 0: expired now.
      if now > expired then
        expired = now
      end
    else
      -- 4. A scheduled expiry; merged with an existing one, never weaker than either.
      local due = now + delay
      if pending_exp > 0 then
        if now > pending_at then
          pending_at = now
        end
        if due < pending_exp then
          pending_exp = due
        end
      else
        pending_at, pending_exp = now, due
      end
    end
  end
  if now > updated_at then
    updated_at = now
  end
  local record = int(stale) .. ',' .. int(expired) .. ',' .. int(pending_at)
    .. ',' .. int(pending_exp) .. ',' .. int(updated_at)
  redis.call('HSET', state, tag, record)
  redis.call('ZADD', log, int(ver), tag)
  if channel then
    announced[#announced + 1] = netstring(tag) .. netstring(record)
  end
end

-- One step of the sweep (above): each record the step returns that has no log score (ZADD NX
-- adds it: the ACL has no ZSCORE) is logged at this version and announced with it, or deleted
-- past the pruning age, as pruning would have. A tag written since the sweep began was logged
-- by its write: one pass over the records there at its start is enough, and HSCAN returns every
-- record present for a whole pass at least once. The cursor names its server, as a page's does
-- (tag_page.lua): another's, after a failover or a restart, would skip records; the pass starts
-- over, as a first pass does ('0'), and covers every loss before it: no other is due.
local sweep = redis.call('HGET', meta, 'sweep')
if sweep then
  local here = redis.pcall('INFO', 'server')
  here = type(here) == 'string' and here:match('run_id:(%x+)') or ''
  local from, cursor, again = sweep:match('^(%x*):(%d+)(%+?)$')
  if from ~= here then
    cursor, again = '0', ''
  end
  local r = redis.call('HSCAN', state, cursor, 'COUNT', 64)
  for i = 1, #r[2], 2 do
    local tag, record = r[2][i], r[2][i + 1]
    if redis.call('ZADD', log, 'NX', int(ver), tag) == 1 then
      local _, _, _, _, updated_at = parse(record)
      if updated_at + prune_after < now then
        redis.call('HDEL', state, tag)
        redis.call('ZREM', log, tag)
      elseif channel then
        announced[#announced + 1] = netstring(tag) .. netstring(record)
      end
    end
  end
  if r[1] ~= '0' then
    redis.call('HSET', meta, 'sweep', here .. ':' .. r[1] .. again)
  elseif again == '' then
    redis.call('HDEL', meta, 'sweep')
  else
    redis.call('HSET', meta, 'sweep', '0')
  end
end

if channel then
  redis.call('SPUBLISH', channel, netstring('a') .. netstring(epoch) .. netstring(int(ver))
    .. netstring(candidate) .. netstring(prev) .. table.concat(announced))
end

-- Prune a bounded batch of the least recently updated tags; stop at the first young one.
local oldest = redis.call('ZRANGE', log, 0, 63)
for _, tag in ipairs(oldest) do
  local _, _, _, _, updated_at = parse(redis.call('HGET', state, tag))
  if updated_at + prune_after < now then
    redis.call('HDEL', state, tag)
    redis.call('ZREM', log, tag)
  else
    break
  end
end

return netstring(epoch) .. netstring(int(ver)) .. netstring(candidate) .. netstring('0')
