package dedupe

import "github.com/redis/go-redis/v9"

// The scripts below are the only writers of a record. Each touches exactly one
// key (KEYS[1]), so each runs atomically on the master that owns the key's slot,
// on a single server or on a Cluster alike.
//
// Times are unix milliseconds computed by the caller and passed as decimal
// strings: the scripts store them verbatim, so no Lua number formatting
// (which differs between Redis and gopher-lua, and goes to exponent notation
// for large values) ever reaches a record. They are compared with tonumber,
// exact for integers below 2^53.
//
// A Lua false (a missing hash field) is normalized with `or ''` before it is
// compared or returned: a nil inside a reply table would truncate it, and a nil
// reply arrives as redis.Nil, which must never be mistaken for "absent".
//
// Fields of a record (see the package documentation for their meaning):
//
//	state, owner, lease, req, tko  the current or last claim (tko: it was a takeover)
//	attempts                       claims that took ownership
//	kind, oreq, outcome            the termination (a record written before
//	                               per-request outcomes may hold a failure here)
//	o:<id>                         request id's own failure, "<kind>:<outcome>"
//	fails                          ids with an o:<id> field, oldest first, space separated
//	unk                            a failure whose call may have reached WeChat Pay
//	pub:<id>                       id's result event was published

// addFailure is Lua shared by the scripts that store a failure: it stores
// value at o:<id>, appends id to fails (given as read) and drops the oldest
// failures beyond maxf, their pub: flags with them, so that a record stays
// bounded. It needs the locals key and maxf.
const addFailure = `
local function addFailure(id, value, fails)
  redis.call('HSET', key, 'o:' .. id, value)
  local ids = {}
  for x in string.gmatch(fails, '%S+') do
    if x ~= id then ids[#ids + 1] = x end
  end
  ids[#ids + 1] = id
  while #ids > maxf do
    local old = table.remove(ids, 1)
    redis.call('HDEL', key, 'o:' .. old, 'pub:' .. old)
  end
  redis.call('HSET', key, 'fails', table.concat(ids, ' '))
end
`

// claimScript decides and applies one Claim.
//
//	KEYS[1] record
//	ARGV    request_id, owner, now ms, lease-until ms, ttl ms
//	returns {status, owner, lease ms, kind, outcome, outcome request_id, published 0|1}
//
// status values are the Status constants; keep them in step.
var claimScript = redis.NewScript(`
local key, req, owner = KEYS[1], ARGV[1], ARGV[2]
local now, untl, ttl = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local f = redis.call('HMGET', key, 'state', 'owner', 'lease', 'req', 'oreq', 'kind', 'outcome',
  'o:' .. req, 'pub:' .. req, 'tko', 'unk')
local state, cur, lease, creq = f[1] or '', f[2] or '', f[3] or '0', f[4] or ''
local oreq, kind, outcome, own = f[5] or '', f[6] or '', f[7] or '', f[8]
local pub = f[9] and 1 or 0
local tko, unk = f[10] or '0', f[11] or ''

-- An outcome stored for this very request answers it, whatever the state:
-- even while another request for the contract is in flight, or after another
-- request terminated the contract.
if own then
  local i = string.find(own, ':', 1, true)
  return {3, cur, lease, string.sub(own, 1, i - 1), string.sub(own, i + 1), req, pub}
end
if kind ~= '' and oreq == req then
  return {3, cur, lease, kind, outcome, oreq, pub}
end
-- A termination is final: no later request may call the API again.
if kind == 'terminated' then
  return {4, cur, lease, kind, outcome, oreq, pub}
end

local status = 0
if state == 'in_flight' then
  local alive = tonumber(lease) > now
  if alive and cur == owner and creq == req then
    -- The same claim again (a client retry whose first reply was lost):
    -- idempotent, it pushes the lease forward and answers as the first
    -- time, a takeover included.
    redis.call('HSET', key, 'lease', untl)
    redis.call('PEXPIRE', key, ttl)
    return {tonumber(tko), owner, untl, '', '', '', 0}
  end
  if alive then
    return {2, cur, lease, '', '', '', 0}
  end
  -- Expired or released: whoever held it may have called the API.
  status = 1
end
-- A failure whose call may have reached WeChat Pay: query first.
if unk ~= '' then status = 1 end

-- Absent, or only failures of other requests are stored (they stay, so
-- those requests still get them): claim it.
redis.call('HSET', key, 'state', 'in_flight', 'owner', owner, 'req', req, 'lease', untl, 'tko', status)
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('PEXPIRE', key, ttl)
return {status, owner, untl, '', '', '', 0}
`)

// extendScript pushes the lease forward if owner still holds the claim. An
// expired lease that nobody took over is still held: ownership changes only
// by an atomic takeover, which rewrites owner.
//
//	ARGV owner, lease-until ms, ttl ms; returns 1, 0 if not the owner, -1 if the record is absent
var extendScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if not f[1] then return -1 end
if f[1] ~= 'in_flight' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// completeScript stores request_id's outcome if owner holds the claim for
// it. A retried Complete (first reply lost) finds its very outcome stored
// and answers 1, even if another owner claimed the contract since: "not
// owner" would make the caller withhold a result it had in fact stored.
//
//	ARGV request_id, owner, kind, outcome, ttl ms, max failures
//	returns 1, 0 if not the owner, -1 if the record is absent
var completeScript = redis.NewScript(`
local key, req, owner, kind, out = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxf = ARGV[5], tonumber(ARGV[6])
` + addFailure + `
local f = redis.call('HMGET', key, 'state', 'owner', 'req', 'oreq', 'kind', 'outcome', 'o:' .. req, 'fails')
if not f[1] then return -1 end
if kind == 'terminated' then
  if f[5] == kind and f[4] == req and f[6] == out then return 1 end
elseif f[7] == kind .. ':' .. out then
  return 1
end
if f[1] ~= 'in_flight' or f[2] ~= owner or f[3] ~= req then return 0 end
if kind == 'terminated' then
  -- A failure in the old single slot moves to its own field first.
  if f[5] == 'failed' and f[4] then addFailure(f[4], f[5] .. ':' .. (f[6] or ''), f[8] or '') end
  redis.call('HSET', key, 'state', 'done', 'kind', kind, 'oreq', req, 'outcome', out)
  redis.call('HDEL', key, 'lease', 'tko', 'unk')
else
  addFailure(req, kind .. ':' .. out, f[8] or '')
  redis.call('HSET', key, 'state', 'done')
  redis.call('HDEL', key, 'lease', 'tko')
  -- Whether a call may have reached WeChat Pay: an unknown outcome marks
  -- the record; a known one (its owner queried first) clears the mark.
  if kind == 'unknown' then
    redis.call('HSET', key, 'unk', req)
  else
    redis.call('HDEL', key, 'unk')
  end
end
redis.call('PEXPIRE', key, ttl)
return 1
`)

// terminationScript records WeChat Pay's word that the contract is
// terminated, under notification id, unless a termination is stored already
// or a claim is in flight under a live lease.
//
//	ARGV id, outcome, now ms, ttl ms, max failures
//	returns {status, owner, lease ms, terminated by, outcome, published 0|1}
//
// status values are the TermStatus constants; keep them in step.
var terminationScript = redis.NewScript(`
local key, id, out, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local ttl, maxf = ARGV[4], tonumber(ARGV[5])
` + addFailure + `
local f = redis.call('HMGET', key, 'state', 'owner', 'lease', 'oreq', 'kind', 'outcome', 'pub:' .. id, 'fails')
local pub = f[7] and 1 or 0
if f[5] == 'terminated' then
  if f[4] == id then return {0, '', '0', id, f[6] or '', pub} end
  return {1, '', '0', f[4] or '', f[6] or '', pub}
end
if f[1] == 'in_flight' and tonumber(f[3] or '0') > now then
  return {2, f[2] or '', f[3], '', '', pub}
end
if f[5] == 'failed' and f[4] then addFailure(f[4], f[5] .. ':' .. (f[6] or ''), f[8] or '') end
-- An expired or released claim loses its owner: its Extend and Complete are
-- refused, and its request, delivered again, is answered Terminated.
redis.call('HSET', key, 'state', 'done', 'owner', '', 'kind', 'terminated', 'oreq', id, 'outcome', out)
redis.call('HDEL', key, 'lease', 'tko', 'unk')
redis.call('PEXPIRE', key, ttl)
return {0, '', '0', id, out, pub}
`)

// publishedScript sets pub:<request_id> on an existing record. It never
// creates one: a record holding only a pub: field would read as absent to
// Claim and hide a lost record from the caller.
//
//	ARGV request_id, ttl ms; returns 1, or 0 if the record is absent
var publishedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pub:' .. ARGV[1], '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript hands a held claim back: the lease expires at once and the
// owner is cleared, so the next claimer, the releasing worker included, gets
// TakenOver and queries before calling. Any stored outcome is left alone.
//
//	ARGV owner, ttl ms; returns 1, or 0 if not the owner (a no-op)
var releaseScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'lease', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

var scripts = []*redis.Script{claimScript, extendScript, completeScript, terminationScript, publishedScript, releaseScript}
