-- A read of a page or route entry by a process that follows the tag state by push, in place of
-- a plain GET (docs/decisions/0031-page-entries-in-the-tier-by-push.md, "The value a read
-- binds"): the entry, and whether the page-write sequence is still at the write the reader
-- knows last, read together. A reader keeps what it read for serving from its tier only when
-- it is: a value of a page write whose announcement it has not heard (on its way, or lost) is
-- one a failover may lose while bringing back exactly the sequence the reader knows, and no
-- pull could then tell. Read-only.
-- KEYS = [entry, meta] (meta: the tag state's, in its {prefix} slot; the entry is in another
--        slot: single Redis only, as entry_write.lua)
-- ARGV = [epoch, pver, pvid]: the last page write the reader knows (pver 0 and pvid '' when
--        the state has none)
-- Returns {entry or false, 1 when the meta hash holds that page write else 0}.
local r, m = redis.call, KEYS[2]
-- HGET each: the documented ACL (docs/operating.md) has no HMGET.
local same = (r('HGET', m, 'epoch') or '') == ARGV[1]
  and (r('HGET', m, 'pver') or '0') == ARGV[2]
  and (r('HGET', m, 'pvid') or '') == ARGV[3]
return { r('GET', KEYS[1]), same and 1 or 0 }
