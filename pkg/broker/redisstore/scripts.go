package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts. Every write of the store is one script, so Redis runs it
// atomically: no other client sees a half-done publish, and two brokers
// racing on the same stream are serialized by Redis itself.
//
// Ids stay strings here ("<ms>-<seq>", as Redis Streams spell them): Lua
// numbers are doubles, which cannot hold a 64-bit broker id. The scripts
// only ever compare the two halves, which fit a double exactly; the Go side
// converts (see ids.go).
//
// Keys of a stream S (see keysOf): sseb:{S}:m (meta hash), sseb:{S}:x (the
// Redis Stream of events), sseb:{S}:i (idempotency hash: key → ids),
// sseb:{S}:k (list of "<last id> <key>" in publish order, to forget keys
// whose events left history). Global: sseb:streams (zset: stream → expiry
// time in ms), sseb:hw (the highest id a deleted stream had issued).

// luaPrelude holds the helpers every script shares.
var luaPrelude = `
local seqlimit = ` + strconv.Itoa(seqLimit) + `

local function idparts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms, tonumber(ms), tonumber(seq)
end

-- id_le(a, b): a <= b for two "ms-seq" ids.
local function id_le(a, b)
  local _, am, as = idparts(a)
  local _, bm, bs = idparts(b)
  return am < bm or (am == bm and as <= bs)
end

local function idmax(a, b)
  if not a or a == '' then return b end
  if not b or b == '' then return a end
  if id_le(a, b) then return b end
  return a
end

-- int spells a whole number the way Redis commands take it (a Lua number
-- handed to redis.call may come out in exponent notation).
local function int(n)
  return string.format('%d', n)
end

-- nextid is the id after ms-seq. A broker id has 23 bits of sequence
-- (seqlimit): past the last one the id carries into the next millisecond,
-- as broker.IDClock does. XADD's '*' would count on within the
-- millisecond, to an id no node can convert (ids.go).
local function nextid(ms, seq)
  if seq + 1 >= seqlimit then return int(ms + 1) .. '-0' end
  return int(ms) .. '-' .. int(seq + 1)
end

-- idafter is the id to ask XADD for after ms-seq, given TIME now: '*'
-- where the clock is past ms and the sequence has room, else nextid (a
-- '*' given the command's start time may still be in ms when now is not).
local function idafter(ms, seq, now)
  if ms >= now or seq + 1 >= seqlimit then return nextid(ms, seq) end
  return '*'
end

local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- trimmed records t as the newest id that left history and forgets the
-- idempotency keys whose publish has no event left.
local function trimmed(meta, idem, order, t)
  redis.call('HSET', meta, 'trim', t)
  while true do
    local head = redis.call('LINDEX', order, 0)
    if not head then break end
    local sp = string.find(head, ' ', 1, true)
    if not id_le(string.sub(head, 1, sp - 1), t) then break end
    redis.call('LPOP', order)
    redis.call('HDEL', idem, string.sub(head, sp + 1))
  end
end

-- trimage drops events older than maxage ms, never the stop event.
local function trimage(meta, x, idem, order, now, maxage)
  if maxage >= now then return end -- an age bound beyond 1970: nothing is that old
  local cut = int(now - maxage) .. '-0'
  local stop = redis.call('HGET', meta, 'stop')
  if stop and id_le(stop, cut) then cut = stop end
  -- Is anything older than cut? (Asked forward: XREVRANGE below every
  -- entry walks the whole stream.)
  if #redis.call('XRANGE', x, '-', '(' .. cut, 'COUNT', 1) == 0 then return end
  local r = redis.call('XREVRANGE', x, '(' .. cut, '-', 'COUNT', 1)
  if #r == 0 then return end
  redis.call('XTRIM', x, 'MINID', cut)
  trimmed(meta, idem, order, r[1][1])
end

-- trimcount keeps the newest maxev events (the stop event is the newest).
local function trimcount(meta, x, idem, order, maxev)
  local n = redis.call('XLEN', x)
  if n <= maxev then return end
  local r = redis.call('XRANGE', x, '-', '+', 'COUNT', int(n - maxev))
  redis.call('XTRIM', x, 'MAXLEN', int(maxev))
  trimmed(meta, idem, order, r[#r][1])
end

-- expire sets a stream's keys to expire in ttl ms, or when they expire
-- already if that is later, and returns the TTL set: a publish must not
-- cut back the longer renewal a node gave a stream it has subscribers on
-- (janitor.go, touch). (PEXPIRE GT would not set a TTL on a new key.)
local function expire(k1, k2, k3, k4, ttl)
  local left = redis.call('PTTL', k1)
  if left > ttl then ttl = left end
  local ms = int(ttl)
  redis.call('PEXPIRE', k1, ms)
  redis.call('PEXPIRE', k2, ms)
  redis.call('PEXPIRE', k3, ms)
  redis.call('PEXPIRE', k4, ms)
  return ttl
end
`

// scriptPublish stores one publish (or a close) as one step.
//
// KEYS: meta, x, idem, order, streams, hw
// ARGV: stream, channel, maxStreams, maxEvents, maxAgeMs, idleTTLms,
// floor ("ms-seq" or ""), idempotency key ("" for none), final ("1": close),
// n, then n pairs of name, data.
//
// Answers {"ok", created, id...}, {"replay", "id id ..."}, {"closed"} or
// {"toomany"}.
var scriptPublish = redis.NewScript(luaPrelude + `
local meta, x, idem, order, streams, hw = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local stream, channel = ARGV[1], ARGV[2]
local maxstreams, maxev, maxage, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local floor, key, final, n = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local now = nowms()
local created = 0
if redis.call('EXISTS', meta) == 1 then
  trimage(meta, x, idem, order, now, maxage)
  if key ~= '' then
    local ids = redis.call('HGET', idem, key)
    if ids then return {'replay', ids} end
  end
  if redis.call('HGET', meta, 'closed') then return {'closed'} end
else
  if redis.call('ZCARD', streams) >= maxstreams then
    redis.call('ZREMRANGEBYSCORE', streams, '-inf', int(now))
    if redis.call('ZCARD', streams) >= maxstreams then return {'toomany'} end
  end
  redis.call('HSET', meta, 'created', int(now))
  created = 1
end
-- A new Redis Stream key starts above every id this stream name may have
-- issued before: the previous life (hw, meta), and what this node saw.
-- The first id is explicit whenever such a bound exists, never '*' then:
-- a Redis that gives '*' a time sampled when the script started (newer
-- versions snapshot the command time) could put it a millisecond before
-- now (TIME), at or below the floor.
-- An existing key starts above what this node saw too, when that is not
-- behind the clock: a Redis that came back without its newest entries (a
-- failover to a replica that missed them, a restore from an older file)
-- before its clock passed them would give '*' an id already acknowledged.
-- (Above the key's own top as well, meta last: XADD refuses an id at or
-- below it.)
-- Whenever the clock is behind the bound, or the bound is at its
-- millisecond's last sequence, the id is explicit too (idafter).
local id = '*'
local new = redis.call('EXISTS', x) == 0
local f = redis.call('HGET', meta, 'last') or ''
if new then
  f = idmax(idmax(f, redis.call('GET', hw) or ''), floor)
elseif floor ~= '' and select(2, idparts(floor)) >= now then
  f = idmax(f, floor)
end
if f ~= '' then
  local _, fm, fs = idparts(f)
  if new and fm < now then id = int(now) .. '-0' else id = idafter(fm, fs, now) end
end
local res = {'ok', created}
local feed = {'F', final, int(#stream), ':', stream}
for i = 1, n do
  local name, data = ARGV[9 + 2 * i], ARGV[10 + 2 * i]
  local got = redis.call('XADD', x, id, 'n', name, 'd', data)
  local _, gm, gs = idparts(got)
  id = idafter(gm, gs, now)
  res[#res + 1] = got
  feed[#feed + 1] = got
  feed[#feed + 1] = ' ' .. int(#name) .. ':'
  feed[#feed + 1] = name
  feed[#feed + 1] = int(#data) .. ':'
  feed[#feed + 1] = data
end
local last = res[#res]
redis.call('HSET', meta, 'last', last)
if final == '1' then redis.call('HSET', meta, 'closed', '1', 'stop', last) end
if key ~= '' then
  redis.call('HSET', idem, key, table.concat(res, ' ', 3))
  redis.call('RPUSH', order, last .. ' ' .. key)
end
trimcount(meta, x, idem, order, maxev)
ttl = expire(meta, x, idem, order, ttl)
redis.call('ZADD', streams, int(now + ttl), stream)
redis.call('PUBLISH', channel, table.concat(feed))
return res
`)

// scriptCreate makes an empty stream.
//
// KEYS: meta, streams. ARGV: stream, maxStreams, idleTTLms.
// Answers "created", "exists" or "toomany".
var scriptCreate = redis.NewScript(luaPrelude + `
local meta, streams = KEYS[1], KEYS[2]
local stream, maxstreams, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', meta) == 1 then return 'exists' end
local now = nowms()
if redis.call('ZCARD', streams) >= maxstreams then
  redis.call('ZREMRANGEBYSCORE', streams, '-inf', int(now))
  if redis.call('ZCARD', streams) >= maxstreams then return 'toomany' end
end
redis.call('HSET', meta, 'created', int(now))
redis.call('PEXPIRE', meta, int(ttl))
redis.call('ZADD', streams, int(now + ttl), stream)
return 'created'
`)

// scriptRead is a consistent snapshot of a stream (after trimming by age).
// With renewMs > 0 (a subscriber is being set up) it also renews the
// stream's TTL as the janitor does for watched streams, so that a stream
// close to its idle expiry does not expire under a new subscriber before
// the janitor's next round.
//
// KEYS: meta, x, idem, order, hw, streams. ARGV: maxAgeMs, after ("ms-seq"
// or ""), limit (0: all, -1: none, only the counts), renewMs, stream.
//
// Answers {0, hw} for a stream that does not exist (hw: sseb:hw, or ""),
// else {1, created, closed, stop, last, first, retained, gap, entries, hw}.
var scriptRead = redis.NewScript(luaPrelude + `
local meta, x, idem, order, hw, streams = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local maxage, after, limit, renew = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', meta) == 0 then return {0, redis.call('GET', hw) or ''} end
local now = nowms()
if renew > 0 then
  local ttl = expire(meta, x, idem, order, renew)
  redis.call('ZADD', streams, int(now + ttl), ARGV[5])
end
trimage(meta, x, idem, order, now, maxage)
local h = redis.call('HMGET', meta, 'created', 'closed', 'stop', 'last', 'trim')
local first = redis.call('XRANGE', x, '-', '+', 'COUNT', 1)
local firstid = ''
if #first > 0 then firstid = first[1][1] end
local gap, start = 0, '-'
if after ~= '' then
  if #redis.call('XRANGE', x, after, after) == 1 then
    start = '(' .. after
  elseif h[5] ~= after then
    gap = 1
  end
end
local entries = {}
if limit == 0 then
  entries = redis.call('XRANGE', x, start, '+')
elseif limit > 0 then
  entries = redis.call('XRANGE', x, start, '+', 'COUNT', int(limit))
end
return {1, h[1] or '', h[2] or '', h[3] or '', h[4] or '', firstid, redis.call('XLEN', x), gap, entries, redis.call('GET', hw) or ''}
`)

// scriptDelete removes a stream and tells every node to end its
// subscriptions.
//
// KEYS: meta, x, idem, order, streams, hw. ARGV: stream, channel.
// Answers 1, or 0 for a stream that does not exist.
var scriptDelete = redis.NewScript(luaPrelude + `
local meta, x, idem, order, streams, hw = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then
  redis.call('ZREM', streams, ARGV[1])
  return 0
end
local last = redis.call('HGET', meta, 'last')
if last then
  local cur = redis.call('GET', hw)
  if not cur or not id_le(last, cur) then redis.call('SET', hw, last) end
end
redis.call('DEL', meta, x, idem, order)
redis.call('ZREM', streams, ARGV[1])
redis.call('PUBLISH', ARGV[2], 'D' .. ARGV[1])
return 1
`)

// scriptTouch renews the idle TTL of streams this node has subscribers on.
//
// KEYS: streams, then meta, x, idem, order of each stream.
// ARGV: idleTTLms, then the stream names.
var scriptTouch = redis.NewScript(luaPrelude + `
local ttl = tonumber(ARGV[1])
local now = nowms()
for i = 2, #ARGV do
  local b = 2 + (i - 2) * 4
  if redis.call('EXISTS', KEYS[b]) == 1 then
    local kept = expire(KEYS[b], KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], ttl)
    redis.call('ZADD', KEYS[1], int(now + kept), ARGV[i])
  end
end
return 0
`)

// scriptTrim trims streams by age, for the janitor.
//
// KEYS: meta, x, idem, order of each stream. ARGV: maxAgeMs.
var scriptTrim = redis.NewScript(luaPrelude + `
local maxage = tonumber(ARGV[1])
local now = nowms()
for b = 1, #KEYS, 4 do
  if redis.call('EXISTS', KEYS[b]) == 1 then
    trimage(KEYS[b], KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], now, maxage)
  end
end
return 0
`)

// scriptExpired forgets streams whose keys expired (idle longer than the
// TTL), tells every node to end their subscriptions, and returns their
// names. The keys of those streams are built here from the names, so this
// script (like the whole store) needs a single Redis, not a Cluster.
//
// KEYS: streams. ARGV: channel, batch size, idleTTLms.
var scriptExpired = redis.NewScript(luaPrelude + `
local streams, channel, ttl = KEYS[1], ARGV[1], tonumber(ARGV[3])
local now = nowms()
local names = redis.call('ZRANGEBYSCORE', streams, '-inf', int(now), 'LIMIT', 0, ARGV[2])
local gone = {}
for _, name in ipairs(names) do
  local meta = 'sseb:{' .. name .. '}:m'
  local left = redis.call('PTTL', meta)
  if left == -2 then
    redis.call('ZREM', streams, name)
    redis.call('PUBLISH', channel, 'D' .. name)
    gone[#gone + 1] = name
  elseif left == -1 then
    redis.call('ZADD', streams, int(now + ttl), name)
  else
    redis.call('ZADD', streams, int(now + left), name)
  end
end
return gone
`)
