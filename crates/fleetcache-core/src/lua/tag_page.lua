-- fleetcache TAG_PAGE: one page of the tag state, for a reader that loads it whole
-- (docs/internals.md, "Page script"). Read-only; it holds Redis for one HSCAN step.
-- KEYS: state (HASH tag -> record), log (ZSET tag -> version), meta (HASH epoch, ver,
--       v:<ver>): the keys of TAG_REFRESH, in its order (one slot).
-- ARGV: cursor ('0' to start; else '<server>:<HSCAN cursor>', as the previous page or the full
--       refresh reply gave it), count (a hint of how many tags per page), then the version
--       and id of the state the reader's previous page (or the full refresh reply that
--       started the load) was read at ('' id: none to check), and the name of the state the
--       load began under, as tag_refresh.lua named it (the meta hash's epoch, '' for none,
--       'no-meta', or a damaged state's '<epoch>~<ver>.<id>~' or '+').
-- Reply: one bulk string of netstrings: 'page', next_cursor ('0' after the last page, else
--        '<server>:<HSCAN cursor>'), ver,
--        vid (the state's version now and its id), rolled_back, then tag, record, ... (a tag
--        may come twice: the reader takes the later reading). rolled_back is '1' when the version
--        the reader named is above ver or now carries another id or none, or the state's name
--        is another: a failover or a flush since the previous page may have lost what
--        the load saw, so the reader loads the state again; no tags then, and cursor '0'.
-- Numbers are written with %.0f: tostring() would print 14 significant digits only.

-- A version is digits only: tonumber takes 'nan' and 'inf', which no comparison would catch.
if #ARGV < 4 or not tonumber(ARGV[2]) or not string.match(ARGV[3], '^%d+$') then
  return redis.error_reply('ERR fleetcache TAG_PAGE: bad arguments')
end

local function netstring(s)
  return string.format('%.0f', #s) .. ':' .. s .. ','
end

-- The test TAG_REFRESH makes of a version the reader names. HINCRBY wrote 'ver' as a plain
-- integer, so it names its id's field as is.
local meta = KEYS[3]
local written = redis.call('HGET', meta, 'ver')
local epoch = redis.call('HGET', meta, 'epoch')
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local top = last[1]
-- An epoch with no version reads the log's highest score, as tag_refresh.lua answers it.
local ver = written or epoch and last[2] or '0'
-- The state's name as tag_refresh.lua gives it (the same rules: two scripts share no code):
-- records without a meta hash are 'no-meta'; a state hash or log gone under versions is a
-- state of its own, named after the epoch, version and version id it came from and whether
-- records are left ('+'), at version 0. A load that began under another name (the records went between
-- two pages, or came back with a failover) took its pages from another state.
local function records()
  local probe = redis.call('HSCAN', KEYS[1], '0', 'COUNT', 1)
  return probe[1] ~= '0' or #probe[2] > 0
end
local name = epoch or ''
if not epoch then
  if records() then
    name = 'no-meta'
  end
else
  local mark
  if top then
    mark = not redis.call('HGET', KEYS[1], top) and '~'
  else
    mark = (records() and '+') or (tonumber(ver) > 0 and '~')
  end
  if mark then
    local n = string.format('%.0f', tonumber(ver))
    name, ver = epoch .. '~' .. n .. '.' .. (redis.call('HGET', meta, 'v:' .. n) or '') .. mark, '0'
  end
end
-- Below the version named: rolled back or damaged, even with no id to check (an epoch with
-- no version keeps none).
local seen = tonumber(ARGV[3])
-- A version named with no id is the log's highest score under a meta hash with no version (a
-- page write made it anew): a version written since, by an update or a merge, may number from
-- 1 again over a state that lost its log and records, which nothing else tells. And the name
-- of the state the load began under (ARGV[5]): another now is a flush, a new state, or keys
-- lost or brought back.
local rolled_back = (seen > 0 and (seen > tonumber(ver) or ARGV[4] ~= ''
  and redis.call('HGET', meta, 'v:' .. string.format('%.0f', seen)) ~= ARGV[4]))
  or (ARGV[4] == '' and seen > 0 and written)
  or (ARGV[5] ~= nil and name ~= ARGV[5])

-- An HSCAN cursor means something to the server process that gave it only: each draws the
-- seed of its hash function at start, so the same state on another process (a failover that
-- lost nothing, a restart with persistence, a migrated slot) has its tags in other buckets,
-- and the cursor would skip some. A cursor names its server (the run_id, '' when INFO is
-- refused or has none); one of another server scans from the start, and the reader, which
-- keeps what it loaded, reads the state whole again. A refused INFO is an error table, told
-- apart by its type (tostring() is kept out of the scripts: scripts.rs, numbers).
local here = redis.pcall('INFO', 'server')
here = type(here) == 'string' and here:match('run_id:(%x+)') or ''
local from, cursor = ARGV[1]:match('^(%x*):(%d+)$')
if from ~= here then
  cursor = '0'
end

-- Rolled back, what the reader loaded so far may be gone: the page it would read next is of
-- no use.
local r = { '0', {} }
if not rolled_back then
  r = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', ARGV[2])
end
if r[1] ~= '0' then
  r[1] = here .. ':' .. r[1]
end
local out = { netstring('page'), netstring(r[1]), netstring(ver),
  netstring(redis.call('HGET', meta, 'v:' .. ver) or ''), netstring(rolled_back and '1' or '0') }
for _, item in ipairs(r[2]) do
  out[#out + 1] = netstring(item)
end
return table.concat(out)
