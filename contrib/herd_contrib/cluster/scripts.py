"""The Lua scripts that make admission atomic in Redis: one round trip, no read-then-write.

Every script reads the clock with ``TIME`` (the server's), so replicas with skewed clocks
still agree on which lease has expired. Keys of one node and model:

- ``leases``: sorted set, lease id -> expiry (ms);
- ``tickets``: sorted set, ticket id -> arrival number (``seq`` is the counter), and
  ``expiries``: hash, ticket id -> expiry (ms), so a dead replica's tickets fall out;
- ``client``: sorted set of one client's lease ids -> expiry, for the per-client cap.
"""

from __future__ import annotations

__all__ = ["ADMIT", "HEARTBEAT", "LEAD", "RELEASE", "RENEW"]

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS: leases, tickets, expiries, client, seq
# ARGV: limit, id, ttl_ms, max_waiting, client_cap, has_client ('1'/'0')
# Returns {outcome, active, waiting, position}.
ADMIT = (
    _NOW
    + """
local limit, id, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local expiry = now + ttl
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local active = redis.call('ZCARD', KEYS[1])
local expiries = redis.call('HGETALL', KEYS[3])
for i = 1, #expiries, 2 do
  if tonumber(expiries[i + 1]) <= now then
    redis.call('ZREM', KEYS[2], expiries[i])
    redis.call('HDEL', KEYS[3], expiries[i])
  end
end
local waiting = redis.call('ZCARD', KEYS[2])
local rank = redis.call('ZRANK', KEYS[2], id)
local ahead = rank or waiting
if limit - active > ahead then
  if rank then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    waiting = waiting - 1
  end
  if ARGV[6] == '1' then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    local cap = tonumber(ARGV[5])
    if cap > 0 and redis.call('ZCARD', KEYS[4]) >= cap then
      return {'capped', active, waiting, 0}
    end
    redis.call('ZADD', KEYS[4], expiry, id)
  end
  redis.call('ZADD', KEYS[1], expiry, id)
  return {'granted', active + 1, waiting, 0}
end
if not rank then
  if waiting >= tonumber(ARGV[4]) then
    return {'full', active, waiting, 0}
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[5]), id)
  waiting = waiting + 1
end
redis.call('HSET', KEYS[3], id, expiry)
return {'queued', active, waiting, ahead}
"""
)

# KEYS: leases, tickets, expiries, client
# ARGV: id, freed channel, freed message
# Returns 1 when a lease was held, else 0. Listeners hear of it only when a ticket waits
# (every waiter holds one): no message per request while nothing queues.
RELEASE = """
local freed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if freed == 1 and redis.call('ZCARD', KEYS[2]) > 0 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return freed
"""

# KEYS: leases_1, client_1, leases_2, client_2, ...  (client "" -> skipped via ARGV flag)
# ARGV: ttl_ms, id_1, has_client_1, id_2, has_client_2, ...
RENEW = (
    _NOW
    + """
local expiry = now + tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local n = (i + 1) / 2
  local id = ARGV[2 * n]
  redis.call('ZADD', KEYS[i], expiry, id)
  if ARGV[2 * n + 1] == '1' then
    redis.call('ZADD', KEYS[i + 1], expiry, id)
  end
end
return #KEYS / 2
"""
)

# KEYS: replicas   ARGV: replica id, ttl_ms   Returns the number of live replicas.
HEARTBEAT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: role   ARGV: replica id, ttl_ms   Returns 1 while this replica holds the role.
LEAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
