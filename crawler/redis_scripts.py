"""The Lua scripts of the shared frontier: every change to a crawl's state in Redis is one of these.

Each script runs atomically in Redis, so two workers can never both take the last slot of a host,
or both pop the same URL. Redis ``TIME`` (milliseconds) is the one clock: workers on different
machines never compare their own clocks. Every script gets the same four leading arguments::

    ARGV[1] key prefix ("crawler:NAME:")  ARGV[2] per_host  ARGV[3] delay (ms)  ARGV[4] worker

Keys under the prefix P (hosts are ``scheme://host[:port]``, entries are queue items, see
:func:`crawler.redisfrontier.pack_entry`)::

    P meta            HASH  the crawl's settings (per_host, delay_ms, scope, robots, created ...)
    P n               HASH  counters: queued, leased, done, started (the page budget), seen
    P seen:<bucket>   SET   64-bit fingerprints, 2**14 buckets (each a compact intset)
    P q:<host>        LIST  the host's queue of entries
    P h:<host>        HASH  politeness: next (ms), bo (backoff ms), cd (Crawl-delay ms);
                            robots: rb (absent: unknown, L: loading, D: done), rbw (loader),
                            rs/rt/re (robots.txt status, text, error)
    P s:<host>        HASH  the host's requests in flight: token (entry, or R for robots.txt)
                            -> worker. Its length is the host's in-flight count
    P ready           ZSET  hosts that have queued URLs and a free slot, by next allowed time
    P hosts           SET   every host seen
    P workers         ZSET  live workers by the time their leases expire (heartbeat renews it)
    P wl:<worker>     HASH  what a worker holds: L<host>\\t<entry> (a leased URL), S<host>\\t<token>
                            (a slot in flight), B<host> (a robots.txt being fetched)
    P wi:<worker>     HASH  what a worker reports for ``status`` (pid, db, pages, rate ...)
    P wids            SET   every worker id that ever joined
"""

from __future__ import annotations

from typing import Final

PRELUDE: Final = r"""
local P = ARGV[1]
local PER_HOST = tonumber(ARGV[2])
local DELAY = tonumber(ARGV[3])
local WORKER = ARGV[4]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(v)
  return tonumber(v) or 0
end

-- Milliseconds between two request starts to a host: max(delay, Crawl-delay) + backoff.
local function interval(hk)
  local v = redis.call('HMGET', hk, 'cd', 'bo')
  return math.max(DELAY, num(v[1])) + num(v[2])
end

-- A host is on the ready set iff it has queued URLs, a free slot, and no robots.txt loading.
local function schedule(host)
  local hk = P .. 'h:' .. host
  if redis.call('LLEN', P .. 'q:' .. host) > 0
      and redis.call('HLEN', P .. 's:' .. host) < PER_HOST
      and redis.call('HGET', hk, 'rb') ~= 'L' then
    redis.call('ZADD', P .. 'ready', num(redis.call('HGET', hk, 'next')), host)
  else
    redis.call('ZREM', P .. 'ready', host)
  end
end

-- 'ok', 'robots' (its robots.txt comes first), or how long to wait in ms (-1: no free slot).
local function may_start(host, now, robots)
  if redis.call('HLEN', P .. 's:' .. host) >= PER_HOST then return -1 end
  local v = redis.call('HMGET', P .. 'h:' .. host, 'next', 'rb')
  if v[2] == 'L' then return -1 end
  local nxt = num(v[1])
  if nxt > now then return nxt - now end
  if robots and not v[2] then return 'robots' end
  return 'ok'
end

-- A request to host starts now: take a slot, move the next allowed time on. Returns it.
local function start(host, token, now)
  local hk = P .. 'h:' .. host
  redis.call('HSET', P .. 's:' .. host, token, WORKER)
  redis.call('HSET', P .. 'wl:' .. WORKER, 'S' .. host .. '\t' .. token, '')
  local nxt = math.max(num(redis.call('HGET', hk, 'next')), now) + interval(hk)
  redis.call('HSET', hk, 'next', nxt)
  return nxt
end

local function start_robots(host, now)
  redis.call('HSET', P .. 'h:' .. host, 'rb', 'L', 'rbw', WORKER)
  redis.call('HSET', P .. 'wl:' .. WORKER, 'B' .. host, '')
  return start(host, 'R', now)
end

local function count(field, delta)
  if delta ~= 0 then redis.call('HINCRBY', P .. 'n', field, delta) end
end

-- Give back everything worker w holds: leased URLs go back to the front of their host's
-- queue, slots are freed, robots.txt loads are reset. Returns the URLs requeued.
local function release_all(w)
  local wl = P .. 'wl:' .. w
  local touched = {}
  local requeued = 0
  for _, f in ipairs(redis.call('HKEYS', wl)) do
    local kind = string.sub(f, 1, 1)
    local rest = string.sub(f, 2)
    if kind == 'B' then
      local hk = P .. 'h:' .. rest
      if redis.call('HGET', hk, 'rb') == 'L' and redis.call('HGET', hk, 'rbw') == w then
        redis.call('HDEL', hk, 'rb', 'rbw')
      end
      touched[rest] = true
    else
      local tab = string.find(rest, '\t', 1, true)
      local host = string.sub(rest, 1, tab - 1)
      local item = string.sub(rest, tab + 1)
      if kind == 'L' then
        redis.call('LPUSH', P .. 'q:' .. host, item)
        requeued = requeued + 1
      else
        redis.call('HDEL', P .. 's:' .. host, item)
      end
      touched[host] = true
    end
  end
  redis.call('DEL', wl)
  count('queued', requeued)
  count('leased', -requeued)
  count('started', -requeued)
  for host in pairs(touched) do schedule(host) end
  return requeued
end
"""

# Create the crawl's meta on first use; return the stored meta (empty: just created).
# ARGV[5..]: field, value pairs.
INIT: Final = r"""
local mk = P .. 'meta'
if redis.call('EXISTS', mk) == 1 then
  return redis.call('HGETALL', mk)
end
for i = 5, #ARGV, 2 do redis.call('HSET', mk, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', mk, 'created', now_ms())
return {}
"""

# A worker joins (or a restarted one, with the same id, takes its place). Slots and robots.txt
# loads of a previous process with this id are given back; its leased URLs are returned to the
# caller, which acks the ones its database saved and requeues the rest.
# ARGV[5]: lease ms; ARGV[6..]: info field, value pairs.
REGISTER: Final = r"""
local now = now_ms()
local wl = P .. 'wl:' .. WORKER
local leases = {}
local touched = {}
for _, f in ipairs(redis.call('HKEYS', wl)) do
  local kind = string.sub(f, 1, 1)
  local rest = string.sub(f, 2)
  if kind == 'L' then
    leases[#leases + 1] = rest
  elseif kind == 'B' then
    local hk = P .. 'h:' .. rest
    if redis.call('HGET', hk, 'rbw') == WORKER then redis.call('HDEL', hk, 'rb', 'rbw') end
    redis.call('HDEL', wl, f)
    touched[rest] = true
  else
    local tab = string.find(rest, '\t', 1, true)
    local host = string.sub(rest, 1, tab - 1)
    redis.call('HDEL', P .. 's:' .. host, string.sub(rest, tab + 1))
    redis.call('HDEL', wl, f)
    touched[host] = true
  end
end
for host in pairs(touched) do schedule(host) end
redis.call('ZADD', P .. 'workers', now + tonumber(ARGV[5]), WORKER)
redis.call('SADD', P .. 'wids', WORKER)
local wi = P .. 'wi:' .. WORKER
redis.call('DEL', wi)
redis.call('HSET', wi, 'joined', now, 'seen', now, 'state', 'running')
for i = 6, #ARGV, 2 do redis.call('HSET', wi, ARGV[i], ARGV[i + 1]) end
return leases
"""

# New URLs: each goes to its host's queue unless its fingerprint is in the seen set.
# ARGV[5..]: bucket, fingerprint, host, entry groups. Returns how many were new.
ADD: Final = r"""
local touched = {}
local added = 0
for i = 5, #ARGV, 4 do
  if redis.call('SADD', P .. 'seen:' .. ARGV[i], ARGV[i + 1]) == 1 then
    local host = ARGV[i + 2]
    redis.call('RPUSH', P .. 'q:' .. host, ARGV[i + 3])
    added = added + 1
    touched[host] = true
  end
end
if added > 0 then
  count('queued', added)
  count('seen', added)
  for host in pairs(touched) do
    redis.call('SADD', P .. 'hosts', host)
    schedule(host)
  end
end
return added
"""

# A redirect target: mark it seen and lease it to this worker (the chain fetches it), unless it
# was seen before or the page budget is spent. ARGV[5..9]: budget (-1: none), bucket,
# fingerprint, host, entry. Returns 1 when claimed.
CLAIM: Final = r"""
local budget = tonumber(ARGV[5])
if budget >= 0 and num(redis.call('HGET', P .. 'n', 'started')) >= budget then return 0 end
if redis.call('SADD', P .. 'seen:' .. ARGV[6], ARGV[7]) == 0 then return 0 end
redis.call('HSET', P .. 'wl:' .. WORKER, 'L' .. ARGV[8] .. '\t' .. ARGV[9], '')
redis.call('SADD', P .. 'hosts', ARGV[8])
count('seen', 1)
count('leased', 1)
count('started', 1)
return 1
"""

# Hand out work: first slots for this worker's own waiting tasks (redirect hops, retries), then
# URLs from the ready hosts' queues, at most n in all; a host's robots.txt comes before its pages.
# ARGV[5] n, ARGV[6] robots (1/0), ARGV[7] budget (-1: none), ARGV[8] no_new (1/0),
# ARGV[9] m, then m (host, token) pairs.
# Returns {wait_ms, queued, leased, spent, slot results (m), then tasks as (kind, host, entry,
# next) groups}: a slot result is 'G<next>' (granted), or 'W<ms>' (wait; -1: no free slot).
TAKE: Final = r"""
local n = tonumber(ARGV[5])
local robots = ARGV[6] == '1'
local budget = tonumber(ARGV[7])
local no_new = ARGV[8] == '1'
local m = tonumber(ARGV[9])
local now = now_ms()
local out = 0
local slots = {}
local tasks = {}
for i = 0, m - 1 do
  local host = ARGV[10 + 2 * i]
  local token = ARGV[11 + 2 * i]
  local r = out < n and may_start(host, now, robots) or -1
  if r == 'ok' then
    slots[#slots + 1] = 'G' .. start(host, token, now)
    out = out + 1
  elseif r == 'robots' then
    local nxt = start_robots(host, now)
    tasks[#tasks + 1] = 'R'; tasks[#tasks + 1] = host
    tasks[#tasks + 1] = ''; tasks[#tasks + 1] = tostring(nxt)
    slots[#slots + 1] = 'W-1'
    out = out + 1
  else
    slots[#slots + 1] = 'W' .. r
  end
  schedule(host)
end
local started = num(redis.call('HGET', P .. 'n', 'started'))
local spent = budget >= 0 and started >= budget
local taken = 0
if not no_new and not spent and out < n then
  local hosts = redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', now, 'LIMIT', 0, n - out)
  for _, host in ipairs(hosts) do
    while out < n do
      if budget >= 0 and started >= budget then spent = true; break end
      local r = may_start(host, now, robots)
      if r == 'robots' then
        local nxt = start_robots(host, now)
        tasks[#tasks + 1] = 'R'; tasks[#tasks + 1] = host
        tasks[#tasks + 1] = ''; tasks[#tasks + 1] = tostring(nxt)
        out = out + 1
        break
      elseif r ~= 'ok' then
        break
      end
      local entry = redis.call('LPOP', P .. 'q:' .. host)
      if not entry then break end
      local nxt = start(host, entry, now)
      redis.call('HSET', P .. 'wl:' .. WORKER, 'L' .. host .. '\t' .. entry, '')
      tasks[#tasks + 1] = 'P'; tasks[#tasks + 1] = host
      tasks[#tasks + 1] = entry; tasks[#tasks + 1] = tostring(nxt)
      started = started + 1
      taken = taken + 1
      out = out + 1
    end
    schedule(host)
    if out >= n or spent then break end
  end
end
count('queued', -taken)
count('leased', taken)
count('started', taken)
local wait = -1
if out == 0 then
  local first = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
  if first[2] then wait = math.max(0, tonumber(first[2]) - now) end
end
local c = redis.call('HMGET', P .. 'n', 'queued', 'leased')
local result = {wait, num(c[1]), num(c[2]), spent and 1 or 0}
for _, s in ipairs(slots) do result[#result + 1] = s end
for _, t in ipairs(tasks) do result[#result + 1] = t end
return result
"""

# Requests answered: free their slots; 429/503 slow the host down (Retry-After honoured), other
# answers let the backoff decay. A slot that was not used (robots.txt disallowed the URL) gives
# its delay back. ARGV[5..]: host, token, status (''), retry_after_ms (''), unused_next ('').
RELEASE: Final = r"""
local now = now_ms()
for i = 5, #ARGV, 5 do
  local host = ARGV[i]
  local token = ARGV[i + 1]
  local status = tonumber(ARGV[i + 2])
  local retry_after = tonumber(ARGV[i + 3])
  local unused = tonumber(ARGV[i + 4])
  local hk = P .. 'h:' .. host
  redis.call('HDEL', P .. 's:' .. host, token)
  redis.call('HDEL', P .. 'wl:' .. WORKER, 'S' .. host .. '\t' .. token)
  if unused then
    if num(redis.call('HGET', hk, 'next')) == unused then
      redis.call('HSET', hk, 'next', math.max(now, unused - interval(hk)))
    end
  elseif status == 429 or status == 503 then
    local bo = math.min(60000, math.max(1000, num(redis.call('HGET', hk, 'bo')) * 2))
    local wait = retry_after or bo
    local nxt = math.max(num(redis.call('HGET', hk, 'next')), now + wait)
    redis.call('HSET', hk, 'bo', bo, 'next', nxt)
  elseif status then
    local bo = num(redis.call('HGET', hk, 'bo'))
    if bo > 0 then redis.call('HSET', hk, 'bo', bo > 50 and bo / 2 or 0) end
  end
  schedule(host)
end
return 1
"""

# A host's robots.txt is known: store it for every worker, set its Crawl-delay, unpause the host.
# ARGV[5..9]: host, status (''), text, error, crawl_delay_ms.
ROBOTS_DONE: Final = r"""
local host = ARGV[5]
local hk = P .. 'h:' .. host
redis.call('HSET', hk, 'rb', 'D', 'rs', ARGV[6], 'rt', ARGV[7], 're', ARGV[8], 'cd', ARGV[9])
redis.call('HDEL', hk, 'rbw')
redis.call('HDEL', P .. 'wl:' .. WORKER, 'B' .. host)
local nxt = math.max(num(redis.call('HGET', hk, 'next')), now_ms() + interval(hk))
redis.call('HSET', hk, 'next', nxt)
schedule(host)
return 1
"""

# URLs saved in this worker's database (the transaction committed): their leases end and they
# count as done. A lease lost meanwhile (the worker was taken for dead) is pulled back out of
# its queue if nobody took it yet. ARGV[5..]: host, entry pairs. Returns {done, lost}.
ACK: Final = r"""
local done = 0
local lost = 0
local leased = 0
local queued = 0
for i = 5, #ARGV, 2 do
  local host = ARGV[i]
  local entry = ARGV[i + 1]
  if redis.call('HDEL', P .. 'wl:' .. WORKER, 'L' .. host .. '\t' .. entry) == 1 then
    leased = leased + 1
    done = done + 1
  elseif redis.call('LREM', P .. 'q:' .. host, 1, entry) == 1 then
    queued = queued + 1
    done = done + 1
    count('started', 1)
    schedule(host)
  else
    lost = lost + 1
  end
end
count('leased', -leased)
count('queued', -queued)
count('done', done)
redis.call('HINCRBY', P .. 'wi:' .. WORKER, 'pages', done)
return {done, lost}
"""

# Return leased URLs to the front of their queues (not fetched after all).
# ARGV[5..]: host, entry pairs. Returns how many were still leased.
REQUEUE: Final = r"""
local requeued = 0
for i = 5, #ARGV, 2 do
  local host = ARGV[i]
  local entry = ARGV[i + 1]
  if redis.call('HDEL', P .. 'wl:' .. WORKER, 'L' .. host .. '\t' .. entry) == 1 then
    redis.call('LPUSH', P .. 'q:' .. host, entry)
    requeued = requeued + 1
    schedule(host)
  end
end
count('queued', requeued)
count('leased', -requeued)
count('started', -requeued)
return requeued
"""

# Renew this worker's leases and report its numbers. ARGV[5]: lease ms; ARGV[6..]: info pairs.
# Returns 0 when the worker had been taken for dead meanwhile (its leases went to others).
HEARTBEAT: Final = r"""
local now = now_ms()
local known = redis.call('ZSCORE', P .. 'workers', WORKER)
redis.call('ZADD', P .. 'workers', now + tonumber(ARGV[5]), WORKER)
local wi = P .. 'wi:' .. WORKER
redis.call('HSET', wi, 'seen', now, 'state', 'running')
for i = 6, #ARGV, 2 do redis.call('HSET', wi, ARGV[i], ARGV[i + 1]) end
if known then return 1 end
return 0
"""

# Any worker: workers whose leases expired (no heartbeat) are dead; everything they held goes
# back. Returns {workers reaped, URLs requeued}.
REAP: Final = r"""
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', P .. 'workers', '-inf', now, 'LIMIT', 0, 16)
local requeued = 0
for _, w in ipairs(dead) do
  requeued = requeued + release_all(w)
  redis.call('ZREM', P .. 'workers', w)
  redis.call('HSET', P .. 'wi:' .. w, 'state', 'dead', 'ended', now)
end
return {#dead, requeued}
"""

# A worker leaves cleanly: what it still holds goes back, it is no longer counted.
# ARGV[5]: the state to record ('done', 'interrupted', 'stopped'); ARGV[6..]: info pairs.
LEAVE: Final = r"""
local requeued = release_all(WORKER)
redis.call('ZREM', P .. 'workers', WORKER)
local wi = P .. 'wi:' .. WORKER
redis.call('HSET', wi, 'state', ARGV[5], 'ended', now_ms(), 'seen', now_ms())
for i = 6, #ARGV, 2 do redis.call('HSET', wi, ARGV[i], ARGV[i + 1]) end
return requeued
"""

SCRIPTS: Final = {
    "init": INIT,
    "register": REGISTER,
    "add": ADD,
    "claim": CLAIM,
    "take": TAKE,
    "release": RELEASE,
    "robots_done": ROBOTS_DONE,
    "ack": ACK,
    "requeue": REQUEUE,
    "heartbeat": HEARTBEAT,
    "reap": REAP,
    "leave": LEAVE,
}
"""Script name -> body; each runs as PRELUDE + body."""
