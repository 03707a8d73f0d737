-- A follower's poll: the entry and whether its lease is still held, read together, so a
-- holder that let the lease go without writing is noticed at once (never confused with a
-- write-and-release landing between two separate reads). Read-only.
-- KEYS = [entry, lease] (one {hash} slot)
-- Returns {entry or false, 1 when the lease exists else 0}.
return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2])}
