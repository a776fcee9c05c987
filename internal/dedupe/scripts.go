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
local f = redis.call('HMGET', key, 'state', 'owner', 'lease', 'req', 'oreq', 'kind', 'outcome')
local state, cur, lease, creq = f[1] or '', f[2] or '', f[3] or '0', f[4] or ''
local oreq, kind, outcome = f[5] or '', f[6] or '', f[7] or ''
local function pub()
  return redis.call('HEXISTS', key, 'pub:' .. req)
end

-- An outcome stored for this very request answers it, whatever the state:
-- even while another request for the contract is in flight after a failure.
if kind ~= '' and oreq == req then
  return {3, cur, lease, kind, outcome, oreq, pub()}
end
-- A termination is final: no later request may call the API again.
if kind == 'terminated' then
  return {4, cur, lease, kind, outcome, oreq, pub()}
end

local status = 0
if state == 'in_flight' then
  local alive = tonumber(lease) > now
  if alive and cur == owner and creq == req then
    -- The same claim again (a client retry whose first reply was lost):
    -- idempotent, it only pushes the lease forward.
    redis.call('HSET', key, 'lease', untl)
    redis.call('PEXPIRE', key, ttl)
    return {0, owner, untl, kind, outcome, oreq, 0}
  end
  if alive then
    return {2, cur, lease, kind, outcome, oreq, 0}
  end
  -- Expired or released: whoever held it may have called the API.
  status = 1
end

-- Absent, or the stored outcome is a failure of another request (it stays
-- stored, so that request still gets it): claim it.
redis.call('HSET', key, 'state', 'in_flight', 'owner', owner, 'req', req, 'lease', untl)
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('PEXPIRE', key, ttl)
return {status, owner, untl, kind, outcome, oreq, 0}
`)

// extendScript pushes the lease forward if owner still holds the claim. An
// expired lease that nobody took over is still held: ownership changes only
// by an atomic takeover, which rewrites owner.
//
//	ARGV owner, lease-until ms, ttl ms; returns 1, or 0 if not the owner
var extendScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// completeScript stores the outcome if owner holds the claim for request_id.
// Owner is kept on the done record so that a retried Complete (first reply
// lost) is recognized and answered 1 rather than "not owner", which would
// make the caller withhold a result it had in fact stored.
//
//	ARGV request_id, owner, kind, outcome, ttl ms; returns 1, or 0 if not the owner
var completeScript = redis.NewScript(`
local key, req, owner = KEYS[1], ARGV[1], ARGV[2]
local f = redis.call('HMGET', key, 'state', 'owner', 'req', 'oreq')
if f[2] ~= owner then return 0 end
if f[1] == 'done' and f[4] == req then return 1 end
if f[1] ~= 'in_flight' or f[3] ~= req then return 0 end
redis.call('HSET', key, 'state', 'done', 'oreq', req, 'kind', ARGV[3], 'outcome', ARGV[4])
redis.call('HDEL', key, 'lease')
redis.call('PEXPIRE', key, ARGV[5])
return 1
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

var scripts = []*redis.Script{claimScript, extendScript, completeScript, publishedScript, releaseScript}
