-- fleetcache TAG_REFRESH: what changed in the tag state since a reader's version
-- (docs/internals.md, "Refresh script"). Read-only.
-- KEYS: state (HASH tag -> record), log (ZSET tag -> version), meta (HASH epoch, ver, v:<ver>,
--       and pver, pvid: the page-write sequence, entry_write.lua).
-- ARGV: known_epoch, known_ver, known_vid (the id of known_ver as the reader saw it, '' when
--       it never saw one), anchor_ver, anchor_vid ('0' and '' when none: below), then pairs
--       ver, vid, each checked the same way: versions the reader's own updates made and that
--       it has not seen in a refresh (the anchor among them), and the version the last part
--       it was answered was cut from (below).
-- Reply: one bulk string of netstrings: epoch, ver, vid, full_flag ('0' partial, '1' full, '2'
--        full only because a version the reader named is too old to check, '3' partial up to
--        ver only: more changes follow, and the reader refreshes again from ver), pver, pvid (the number
--        and id of the last page write: a process that follows by push compares them with the
--        last it knows; others ignore them), then (full) the cursor of the next page ('0':
--        none; else '<server>:<HSCAN cursor>', tag_page.lua), or ('3') the state's version
--        and its id, the part was cut from, then tag, record, ...
-- Numbers are written with %.0f: tostring() would print 14 significant digits only.

if #ARGV < 5 then
  return redis.error_reply('ERR fleetcache TAG_REFRESH: expected 5 arguments')
end
local state, log, meta = KEYS[1], KEYS[2], KEYS[3]
local known_epoch = ARGV[1]
local known_ver = tonumber(ARGV[2])
local known_vid = ARGV[3]
local anchor_ver, anchor_vid = tonumber(ARGV[4]), ARGV[5]
-- Digits only: tonumber takes 'nan' and 'inf', which no comparison would catch.
if not string.match(ARGV[2], '^%d+$') or not string.match(ARGV[4], '^%d+$') then
  return redis.error_reply('ERR fleetcache TAG_REFRESH: bad arguments')
end

local function int(x)
  return string.format('%.0f', x)
end

local out = {}
local function push(s)
  out[#out + 1] = int(#s) .. ':' .. s .. ','
end

-- A missing meta hash reads as epoch '' (or 'no-meta', below) and version 0, no page write
-- (0, ''). HGET each: the documented ACL (docs/operating.md) has no HMGET, and in a script the
-- calls cost no trip.
local function field(name)
  return redis.call('HGET', meta, name)
end
local head = { field('epoch'), field('ver'), field('pver'), field('pvid') }
local epoch = head[1] or ''
local ver = tonumber(head[2] or '0') or 0
-- An epoch with no version over a log (a page write made the meta hash anew after it was lost
-- alone): followed from the log's highest score, where the next update numbers its version
-- (tag_update.lua), so the old log comes once, with the load, not again after that update.
if head[1] and not head[2] then
  ver = tonumber(redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2]) or 0
end
-- Records without an epoch: the meta hash was lost alone (DEL, eviction). Named 'no-meta'
-- (EPOCH_WITHOUT_META in tags.rs) and answered in full to every reader, even one that loaded
-- it: the name does not tell one such state from the next (a flush and a second loss
-- between two refreshes), a load compares. The reader then makes the meta hash anew
-- (TAG_MERGE). The ACL has no HLEN; an existing hash is never empty.
local no_meta = false
if not head[1] then
  local probe = redis.call('HSCAN', state, '0', 'COUNT', 1)
  no_meta = probe[1] ~= '0' or #probe[2] > 0
  if no_meta then
    epoch = 'no-meta'
  end
-- A state hash or version log gone under versions (a DEL, an allkeys-* eviction): every tag
-- of the log has a record, so the log's last tag lacking one, or no log under a version,
-- shows it. Answered as a state of its own, named after the epoch, version and version id it
-- came from (a failover that reused the number is another state) and whether records are
-- left ('+': the log alone is gone), at version 0: every reader loads
-- what is left and gives back what it knows, once, and again if the rest goes too; the next
-- write makes the keys a new state (tag_update.lua); a page reads version 0 too (tag_page.lua).
else
  local top = redis.call('ZRANGE', log, -1, -1)[1]
  local mark
  if top then
    mark = not redis.call('HGET', state, top) and '~'
  else
    -- No log under records shows it too when no version does (a page write made the meta
    -- hash anew, epoch only): else the records going next would look like nothing changed.
    local probe = redis.call('HSCAN', state, '0', 'COUNT', 1)
    mark = ((probe[1] ~= '0' or #probe[2] > 0) and '+') or (ver > 0 and '~')
  end
  if mark then
    local id = redis.call('HGET', meta, 'v:' .. int(ver)) or ''
    epoch, ver = epoch .. '~' .. int(ver) .. '.' .. id .. mark, 0
  end
end

-- A version's id ('' when the state keeps none: an id is never empty).
local function vid(v)
  return redis.call('HGET', meta, 'v:' .. int(v)) or ''
end

-- The version the reader knows was made by another update than the one it saw: a failover
-- lost that update and later ones reused its number (mismatch). An id that is gone (the reader
-- is over 1024 versions behind) cannot be checked: answered in full too, flagged '2' when
-- nothing else calls for it, so that the reader knows no loss was seen.
local mismatch, gone = false, false
local function check(v, id, spared)
  if v <= 0 then
    return
  end
  -- A version followed with no id (a page write made the meta hash anew, ids gone: the reader
  -- follows the log's highest score) that has one now was made since by another update: the
  -- log and the state hash went and the numbers began again over the same epoch. The same for
  -- a version the reader took an announcement as the next of (ARGV[6..]).
  if id == '' then
    if v <= ver and vid(v) ~= '' then
      mismatch = true
    end
    return
  end
  if v > ver then
    mismatch = true
    return
  end
  local stored = vid(v)
  if stored == '' then
    gone = not spared or gone
  elseif stored ~= id then
    mismatch = true
  end
end
-- The anchor: the version the last page of the reader's load was read at, every page having
-- checked the one before it held (tag_page.lua), from the version the load began at. Holding
-- still, it shows that no failover rolled the state back below that version since the load
-- began: then a known version at or below it whose id is gone (over 1024 versions passed
-- during the load) needs no check of its own, and the reader is answered in part, not made to
-- load again and again while revalidations come faster than a load ends. Only a load proves
-- so: a reader's own later update holding says nothing of what came before it.
local anchored = anchor_vid ~= '' and anchor_ver >= known_ver and anchor_ver <= ver
  and vid(anchor_ver) == anchor_vid
check(known_ver, known_vid, anchored)
for i = 6, #ARGV - 1, 2 do
  check(tonumber(ARGV[i]) or 0, ARGV[i + 1])
end
local replaced = no_meta or epoch ~= known_epoch or known_ver > ver or mismatch

-- The tags changed since the reader's version, in parts of at most 4000 (PART_TAGS in tags.rs,
-- which tests/lua_scripts.rs checks against this script): one call over more would hold Redis for several milliseconds (1.5 to 2.5 us a tag)
-- and the reply would grow with every write since. A part ends after the last version whose
-- tags all fit (the version of the 4001st changed tag, less one), and says so: flag
-- '3', ver and vid of that version. A tag's log score is its latest version, so one changed
-- again later comes with a later part, as the state holds it: as long as the state still holds
-- that later change. A failover that loses it and keeps the part's version would leave the
-- reader without the tag's earlier change, and nothing later names it; so a part names the
-- version it was cut from, and the reader's next refresh checks it as one of its pairs (a
-- mismatch: answered in full). The first version alone may hold
-- more (one update of many tags): it comes whole, as its own script call wrote it. Scores
-- above ver (a log a lost meta hash left behind) are not the state's versions: never looked
-- at. The documented ACL grants ZRANGEBYSCORE, not ZCOUNT.
local upto = ver
local changed = {}
if not (replaced or gone) and known_ver < ver then
  local past = redis.call('ZRANGEBYSCORE', log, '(' .. int(known_ver), int(ver), 'WITHSCORES',
    'LIMIT', 4000, 1)[2]
  if past then
    upto = math.max(tonumber(past) - 1, known_ver + 1)
  end
  changed = redis.call('ZRANGEBYSCORE', log, '(' .. int(known_ver), int(upto))
end
push(epoch)
push(int(upto))
push(vid(upto))
push(replaced and '1' or gone and '2' or upto < ver and '3' or '0')
push(head[3] or '0')
push(head[4] or '')

if upto < ver then
  push(int(ver))
  push(vid(ver))
end

if replaced or gone then
  -- State created anew, or rolled back ('1'), or the reader too far behind to tell ('2'): the
  -- reader loads the whole state page by page, the first page here and the rest with
  -- TAG_PAGE, then follows it from this version. A state that fits in one page (1000 tags,
  -- PAGE_COUNT in tags.rs) is whole in this reply.
  local page = redis.call('HSCAN', state, '0', 'COUNT', 1000)
  if page[1] ~= '0' then
    -- The cursor names this server (tag_page.lua says why).
    local run = redis.pcall('INFO', 'server')
    page[1] = (type(run) == 'string' and run:match('run_id:(%x+)') or '') .. ':' .. page[1]
  end
  push(page[1])
  for _, item in ipairs(page[2]) do
    push(item)
  end
else
  for _, tag in ipairs(changed) do
    local record = redis.call('HGET', state, tag)
    if record then
      push(tag)
      push(record)
    end
  end
end

return table.concat(out)
