-- fleetcache TAG_PAGE: one page of the tag state, for a reader that loads it whole
-- (docs/internals.md, "Page script"). Read-only; it holds Redis for one HSCAN step.
-- KEYS: state (HASH tag -> record).
-- ARGV: cursor ('0' to start), count (a hint of how many tags per page).
-- Reply: one bulk string of netstrings: 'page', next_cursor ('0' after the last page), then
--        tag, record, ... (a tag may come twice; merging makes that harmless).

if #ARGV < 2 or not tonumber(ARGV[2]) then
  return redis.error_reply('ERR fleetcache TAG_PAGE: bad arguments')
end

local function netstring(s)
  return string.format('%.0f', #s) .. ':' .. s .. ','
end

local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local out = { netstring('page'), netstring(r[1]) }
local items = r[2]
for i = 1, #items do
  out[#out + 1] = netstring(items[i])
end
return table.concat(out)
