"""Redis adapter: provisioning keys and the per-call dialog record.

The key schema is documented in docs/redis-keys.md; keep the two in step.
"""
import hashlib
import json

from vpbx.core import limits
from vpbx.adapters.redis import resp
from vpbx.core.call import SIDES, JoinRef, leg_of_tag

PREFIX = "vpbx:"
TENANTS = PREFIX + "tenants"            # set of tenant domains
TRUNKS = PREFIX + "trunks"              # hash  IP:PORT -> tenant domain
TRUNK_REFER = PREFIX + "trunk_refer"    # hash  IP:PORT -> "pass" (absent: "terminate")
DUE = PREFIX + "due"                    # zset  "<call-id> <leg> <what>" -> when due
EVENTS = PREFIX + "events"              # stream of PBX events (completed codes, ...)
EVENTS_MAXLEN = 10000
LIMITS = PREFIX + "limits"              # hash  register|invite|options -> requests/s per source

CALL_TTL = 6 * 3600                     # safety net; refreshed by in-dialog requests


def tenant_key(domain):
    return f"{PREFIX}tenant:{domain}"    # hash: settings + "outbound"


def exts_key(domain):
    return f"{PREFIX}exts:{domain}"      # hash: extension -> HA1 ("" = open)


def extidx_key(domain):
    return f"{PREFIX}extidx:{domain}"    # zset (all scores 0): extension numbers, for prefix queries


def loc_key(domain, ext):
    return f"{PREFIX}loc:{domain}:{ext}"     # hash: the extension's registered binding


def rate_key(kind, source, index):
    # string counter: requests of `kind` from `source` (limits.source_key) in window `index`
    return f"{PREFIX}rate:{kind}:{source}:{index}"


def transfers_key(tenant, index):
    return f"{PREFIX}transfers:{tenant}:{index}"    # string counter: transfers in minute `index`


def _counting(key, previous, ttl):
    """Commands that count one more in `key` and read the count of the window before."""
    return (("INCR", key), ("EXPIRE", key, ttl), ("GET", previous))


def _count(replies):
    current, _, previous = replies
    return limits.Count(int(current), int(previous or 0))


def _rate_commands(kind, ip, now):
    """Counting a request of `kind` from `ip` in the pipeline of its lookups (no round trip
    of its own), with the operator's rate for it."""
    index, _ = limits.window(now)
    source = limits.source_key(ip)
    return (*_counting(rate_key(kind, source, index), rate_key(kind, source, index - 1),
                       limits.KEY_TTL), ("HGET", LIMITS, kind))


def _rate_facts(replies):
    """-> (limits.Count, the operator's rate or None) from _rate_commands' replies."""
    return _count(replies[:3]), replies[3]


def call_key(callid):
    # Hash tag: every key of one call lands in one Redis Cluster slot.
    return f"{PREFIX}call:{{{callid}}}"


def dtmf_key(callid, side):
    return f"{PREFIX}dtmf:{{{callid}}}:{side}"   # hash: what that side has typed (dtmf.State)


TIMERS = ("code", "rearm", "t:no_answer", "t:relink", "t:recall", "t:hangup")


def _as_dict(flat):
    """HGETALL's reply as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


class Store:
    """The per-call operations (the proxy's path) on the lean client `fast` (resp.Client).
    Provisioning and tools: provisioning_store.ProvisioningStore (redis-py)."""

    def __init__(self, fast, sessions_db=None):
        """sessions_db: the database of this Redis where rtpengine keeps its sessions
        (VPBX_RTPE_REDIS_DB), None when it keeps none. A call's end deletes rtpengine's copy
        there too, in the same script: rtpengine skips its own delete while it cannot write
        to Redis (and for a second after a failure), and a restarted rtpengine would bring
        the ended call back."""
        self.fast = fast
        self.sessions_db = "" if sessions_db is None else str(sessions_db)

    def trunk_refer(self, hostport):
        """"pass" or "terminate" for a REFER aimed at the trunk's party."""
        return self.fast.pipeline(("HGET", TRUNK_REFER, hostport))[0] or "terminate"

    # ---- registrations ----------------------------------------------------

    def bind(self, domain, ext, binding, seconds):
        """Replace the extension's binding; Redis expires it with the registration."""
        key = loc_key(domain, ext)
        self.fast.pipeline(("MULTI",), ("DEL", key), ("HSET", key, *_flat(binding)),
                           ("EXPIRE", key, seconds), ("EXEC",))

    def unbind(self, domain, ext):
        self.fast.pipeline(("DEL", loc_key(domain, ext)))

    # ---- routing lookups (the proxy; one round trip each) ---------------

    def invite_facts(self, source, from_domain, from_user, ruri_user, ip, now):
        """-> (trunk's tenant or None, tenant known, tenant hash, caller secret, callee secret,
        callee binding, rate: (limits.Count, operator's rate) of INVITEs from `ip`).

        Secrets: None = no such extension, "" = open, else HA1. Binding: {} when the callee is
        not registered. Reads the From domain's tenant; a call from a trunk of another tenant
        costs a second round trip."""
        trunk, tenant, known, (caller, callee), binding, *rate = self.fast.pipeline(
            ("HGET", TRUNKS, source),
            ("HGETALL", tenant_key(from_domain)),
            ("SISMEMBER", TENANTS, from_domain),
            ("HMGET", exts_key(from_domain), from_user, ruri_user),
            ("HGETALL", loc_key(from_domain, ruri_user)),
            *_rate_commands("invite", ip, now))
        rate = _rate_facts(rate)
        if trunk and trunk != from_domain:
            tenant, callee, binding = self.fast.pipeline(
                ("HGETALL", tenant_key(trunk)),
                ("HGET", exts_key(trunk), ruri_user),
                ("HGETALL", loc_key(trunk, ruri_user)))
            return trunk, True, _as_dict(tenant), None, callee, _as_dict(binding), rate
        return trunk, bool(known), _as_dict(tenant), caller, callee, _as_dict(binding), rate

    def is_tenant(self, domain):
        return bool(self.fast.pipeline(("SISMEMBER", TENANTS, domain))[0])

    def outbound_trunk(self, domain):
        """IP:PORT of the tenant's outbound trunk, or None."""
        return self.fast.pipeline(("HGET", tenant_key(domain), "outbound"))[0]

    def binding(self, domain, ext):
        """The extension's registered binding, {} when it is not registered."""
        return _as_dict(self.fast.pipeline(("HGETALL", loc_key(domain, ext)))[0])

    def register_facts(self, domain, user, source, ip, now):
        """-> (tenant known, secret as in invite_facts, current binding, rate of REGISTERs from
        `ip` as in invite_facts, or None when `source` (IP:PORT) is a trunk: not limited)"""
        known, secret, binding, trunk, *rate = self.fast.pipeline(
            ("SISMEMBER", TENANTS, domain),
            ("HGET", exts_key(domain), user),
            ("HGETALL", loc_key(domain, user)),
            ("HGET", TRUNKS, source),
            *_rate_commands("register", ip, now))
        return bool(known), secret, _as_dict(binding), None if trunk else _rate_facts(rate)

    def options_rate(self, source, ip, now):
        """An OPTIONS outside a dialog (one round trip) -> its rate as in register_facts."""
        trunk, *rate = self.fast.pipeline(("HGET", TRUNKS, source),
                                          *_rate_commands("options", ip, now))
        return None if trunk else _rate_facts(rate)

    # ---- abuse limits ----------------------------------------------------

    def transfer_counted(self, tenant, now):
        """Count one more transfer of the tenant -> limits.Count (per minute)."""
        index, _ = limits.window(now, limits.MINUTE)
        return _count(self.fast.pipeline(*_counting(
            transfers_key(tenant, index), transfers_key(tenant, index - 1), limits.TRANSFER_KEY_TTL)))

    def transfer_uncounted(self, tenant, now):
        """Take back a transfer counted by transfer_counted that did not go ahead."""
        self.fast.pipeline(("DECR", transfers_key(tenant, limits.window(now, limits.MINUTE)[0])))

    # ---- dialog record ----------------------------------------------------

    def call_save(self, callid, record):
        key = call_key(callid)
        self.fast.pipeline(("HSET", key, *_flat(record)), ("EXPIRE", key, CALL_TTL))

    def call_update(self, callid, fields):
        """Update an existing record (in-dialog requests); never recreates an ended call.
        -> the transfer engine's (phase, a, c), "" each before any transfer, and x_join ("" for
        a dialog no attended REFER has taken over); None when there is no such call."""
        reply = self._run(_UPDATE_IF_EXISTS, call_key(callid), CALL_TTL, *_flat(fields))
        return tuple(x or "" for x in reply) if reply else None

    def call_update_from(self, callid, side, sender, fields):
        """call_update for a request of `side` that came from `sender` (proto:ip:port). In a
        call the transfer engine looks after (or a dialog it took over) nothing is written
        unless the record holds that address for the side. -> call_update's tuple and
        whether it was written; (None, True) for an unknown call (nothing to protect)."""
        reply = self._run(_UPDATE_IF_SENDER, call_key(callid), CALL_TTL, f"{side}_src", sender,
                          *_flat(fields))
        if not reply:
            return None, True
        return tuple(x or "" for x in reply[:4]), reply[4] == 1

    def leg_sender(self, callid, leg):
        """What identifies the sender of a leg's request: the call's tenant and the leg's
        role, extension and address ({} when the call is gone)."""
        names = ("tenant", f"{leg}_role", f"{leg}_ext", f"{leg}_src")
        values = self.fast.pipeline(("HMGET", call_key(callid), *names))[0]
        return {} if values[0] is None else dict(zip(names, values))

    def _run(self, script, *keys_then_args, extra_keys=0):
        """Run a Lua script (EVALSHA, loading it on first use); KEYS count is script.keys
        (plus `extra_keys` declared after them)."""
        args = (script.keys + extra_keys, *keys_then_args)
        (reply,) = self.fast.pipeline(("EVALSHA", script.sha, *args), raise_errors=False)
        if isinstance(reply, resp.RespError):
            if not str(reply).startswith("NOSCRIPT"):
                raise reply
            (reply,) = self.fast.pipeline(("EVAL", script.text, *args))
        return reply

    def reply_leg(self, callid, to_tag):
        """Whose reply to an in-dialog INVITE the proxy sent (not to a leg it called) ->
        (call-id, leg): B's in a dialog an attended REFER took over ("<call-id> <leg> <B's
        side>" in x_join: the call it is now a leg of), or an original side's (the client
        taken off hold), found by its tag; None when the dialog is gone."""
        join, caller_tag, callee_tag = self.fast.pipeline(
            ("HMGET", call_key(callid), "x_join", "caller_tag", "callee_tag"))[0]
        ref = JoinRef.parse(join)
        if ref:
            return ref.callid, ref.leg
        side = {caller_tag: "caller", callee_tag: "callee"}.get(to_tag) if to_tag else None
        return (callid, side) if side else None

    def call_end(self, callid, tags=("", "")):
        """A BYE: delete the record of an ordinary call -> None; a call with a transfer
        engine state, or taken over by one (x_join), is kept for the engine -> its record;
        no such call -> {}, as for a BYE whose `tags` (From, To; in either order) are not
        the dialog's: it ends nothing. One round trip either way."""
        record = self._run(_END_PLAIN_CALL, call_key(callid), DUE,
                           *(dtmf_key(callid, side) for side in SIDES), callid, *tags,
                           self.sessions_db)
        return None if record is None else _as_dict(record)

    # ---- transfers -------------------------------------------------------

    def call_load(self, callid):
        return _as_dict(self.fast.pipeline(("HGETALL", call_key(callid)))[0])

    def transfer_save(self, callid, version, fields, due=(), events=(), others=None, ends=None):
        """The commit of a transfer step, atomically and only if the state's version is still
        `version` (compare-and-set on x_v): write `fields` with the state, or with `ends`
        ((legs, Call-IDs of the dialogs it took over)) delete the call instead (its record,
        its legs' feature-code state and pending timers, and those of the dialogs it took
        over); apply `others` ({Call-ID: {"set": {...}, "unset": [...]}}) to other dialogs'
        records that still exist; schedule the timers `due` [(at, leg, kind)]; append
        `events` to the PBX event stream. -> False when another event changed the state
        first or the call is gone."""
        other_keys = [call_key(other) for other in (others or {})]
        payload = {"fields": fields, "events": [_flat(e) for e in events],
                   "due": [[repr(at), f"{callid} {leg} {kind}"] for at, leg, kind in due],
                   "others": {call_key(c): change for c, change in (others or {}).items()}}
        deleted = []
        if ends is not None:
            legs, taken = ends
            calls = [(callid, legs), *((other, SIDES) for other in taken)]
            deleted = [key for c, ls in calls
                       for key in ((call_key(c),) if c != callid else ())
                       + tuple(dtmf_key(c, leg) for leg in ls)]
            payload["delete"] = deleted
            payload["sessions"] = [callid, *taken]
            payload["unschedule"] = [f"{c} {leg} {what}" for c, ls in calls for leg in ls for what in TIMERS]
        return self._run(_SAVE_TRANSFER, call_key(callid), DUE, EVENTS, *other_keys, *deleted,
                         version, CALL_TTL, EVENTS_MAXLEN, json.dumps(payload), self.sessions_db,
                         extra_keys=len(other_keys) + len(deleted)) == 1

    # ---- feature codes (DTMF) ----------------------------------------------

    DTMF_CALL_FIELDS = ("tenant", "pbx_transfer", "transfer_digit_timeout", "transfer_external",
                        "caller_role", "callee_role", "caller_ext", "callee_ext",
                        "caller_src", "callee_src", "rtp_caller", "rtp_callee",
                        "x_phase", "x_a", "x_c", "x_join")

    def dtmf_load(self, callid, side=None, rtp_tag=None):
        """One round trip -> (call fields, {} when the call is unknown; the side, found from
        rtpengine's party tag when not given; that side's typing state)."""
        if side is None and rtp_tag:
            side = leg_of_tag(rtp_tag)      # a leg the proxy called names itself in its tag
        sides = (side,) if side else SIDES
        names = self.DTMF_CALL_FIELDS + (tuple(f"{side}_{f}" for f in ("role", "ext", "src"))
                                         if side not in (None, *SIDES) else ())
        replies = self.fast.pipeline(("HMGET", call_key(callid), *names),
                                     *(("HGETALL", dtmf_key(callid, s)) for s in sides))
        call = dict(zip(names, replies[0]))
        if call["tenant"] is None:
            return {}, side, {}
        if side is None:
            side = {call["rtp_caller"]: "caller", call["rtp_callee"]: "callee"}.get(rtp_tag)
            if side is None:
                return {}, None, {}
        return call, side, _as_dict(replies[1 + sides.index(side)])

    def ext_match(self, domain, digits):
        """-> (digits are an extension, some longer extension starts with them)"""
        exact, longer = self.fast.pipeline(
            ("HEXISTS", exts_key(domain), digits),
            ("ZRANGEBYLEX", extidx_key(domain), b"(" + digits.encode(), b"[" + digits.encode() + b"\xff",
             "LIMIT", 0, 1))
        return bool(exact), bool(longer)

    def dtmf_save(self, callid, side, version, fields, deadline, event=None):
        """Write the side's typing state if nobody changed it since it was read at `version`
        (compare-and-set); keep its deadline in the due set; append `event` to the PBX event
        stream. -> False when the state had changed (read again and retry); nothing is written
        for a call that has ended meanwhile."""
        event = _flat(event or {})
        return self._run(_SAVE_DTMF, dtmf_key(callid, side), DUE, EVENTS, call_key(callid),
                         version, CALL_TTL,
                         f"{callid} {side} code", repr(deadline) if deadline else "", EVENTS_MAXLEN,
                         len(event), *event, *_flat(fields)) != 0

    def schedule_rearm(self, callid, side, at):
        self.schedule(callid, side, "rearm", at)

    def schedule(self, callid, leg, what, at):
        """A timer of the call's (what: as `due` gives it), outside any transfer's plan."""
        self.fast.pipeline(("ZADD", DUE, repr(at), f"{callid} {leg} {what}"))

    def due(self, now, limit=50):
        """Claim the timers that are due -> [(call-id, leg, what)]: what is "code" (a code's
        digit timeout), "rearm" (a party's DTMF guard after a code) or "t:<kind>" (the
        transfer engine's)."""
        return [tuple(member.split(" ", 2)) for member in self._run(_CLAIM_DUE, DUE, repr(now), limit)]

    def typing(self, callid, side):
        """The code a side is typing now ("" when none), the side's rtpengine tag, and the
        transfer engine's phase ("" before any transfer)."""
        code, (tag, phase) = self.fast.pipeline(("HGET", dtmf_key(callid, side), "code"),
                                                ("HMGET", call_key(callid), f"rtp_{side}", "x_phase"))
        return code or "", tag, phase or ""

    def events(self, count=100):
        """The latest PBX events, oldest first: [(id, {field: value})] (for tools and tests)."""
        return [(entry_id, _as_dict(fields)) for entry_id, fields in
                reversed(self.fast.pipeline(("XREVRANGE", EVENTS, "+", "-", "COUNT", count))[0])]


class Script:
    def __init__(self, keys, text):
        self.keys, self.text = keys, text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


_SAVE_DTMF = Script(4, """
-- KEYS: party state hash, due zset, event stream, call record
-- ARGV: expected version ('' for a new state), ttl, due member, due score ('' = not due),
--       stream maxlen, n, n event field/value args, then state field/value args
if redis.call('exists', KEYS[4]) == 0 then return 2 end
if (redis.call('hget', KEYS[1], 'v') or '') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[6])
local state = {}
for i = 7 + n, #ARGV do state[#state + 1] = ARGV[i] end
redis.call('hset', KEYS[1], 'v', (tonumber(ARGV[1]) or 0) + 1, unpack(state))
redis.call('expire', KEYS[1], ARGV[2])
if ARGV[4] == '' then redis.call('zrem', KEYS[2], ARGV[3])
else redis.call('zadd', KEYS[2], ARGV[4], ARGV[3]) end
if n > 0 then
  local event = {}
  for i = 7, 6 + n do event[#event + 1] = ARGV[i] end
  redis.call('xadd', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(event))
end
return 1
""")

_SAVE_TRANSFER = Script(3, """
-- KEYS: call record, due zset, event stream (then the other records and deleted keys the
--       payload names, declared for Redis Cluster's slot check)
-- ARGV: expected x_v ('' before the first transfer), ttl, stream maxlen, JSON payload:
--       fields, others {key: {set, unset}}, due [[at, member]], events, and to end the call
--       delete [keys besides the record], unschedule [due members], sessions [Call-IDs
--       whose copy in rtpengine's database goes]; rtpengine's database ('' = none)
if redis.call('exists', KEYS[1]) == 0 then return 2 end
if (redis.call('hget', KEYS[1], 'x_v') or '') ~= ARGV[1] then return 0 end
local p = cjson.decode(ARGV[4])
for key, change in pairs(p.others) do
  if redis.call('exists', key) == 1 then
    local set = {}
    for k, v in pairs(change.set) do set[#set + 1] = k; set[#set + 1] = v end
    if #set > 0 then redis.call('hset', key, unpack(set)) end
    if #change.unset > 0 then redis.call('hdel', key, unpack(change.unset)) end
  end
end
if p.delete then
  redis.call('del', KEYS[1], unpack(p.delete))
  if #p.unschedule > 0 then redis.call('zrem', KEYS[2], unpack(p.unschedule)) end
else
  local fields = {'x_v', (tonumber(ARGV[1]) or 0) + 1}
  for k, v in pairs(p.fields) do fields[#fields + 1] = k; fields[#fields + 1] = v end
  redis.call('hset', KEYS[1], unpack(fields))
  redis.call('expire', KEYS[1], ARGV[2])
end
for _, d in ipairs(p.due) do redis.call('zadd', KEYS[2], d[1], d[2]) end
for _, e in ipairs(p.events) do
  redis.call('xadd', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(e))
end
if p.delete and ARGV[5] ~= '' then
  redis.call('select', ARGV[5])        -- for the rest of this script only (Redis >= 7)
  redis.call('del', unpack(p.sessions))
end
return 1
""")

_END_PLAIN_CALL = Script(4, """
-- KEYS: call record, due zset, the two sides' typing state;
-- ARGV: call-id, the BYE's From and To tags ('' '': not checked), rtpengine's database
--       ('' = none: its copy of the session is deleted there)
if redis.call('exists', KEYS[1]) == 0 then return {} end
local kept = redis.call('hmget', KEYS[1], 'x_v', 'x_join', 'caller_tag', 'callee_tag')
if kept[1] or kept[2] then return redis.call('hgetall', KEYS[1]) end
local a, b = kept[3] or '', kept[4] or ''
if ARGV[2] ~= '' and not ((ARGV[2] == a and ARGV[3] == b) or (ARGV[2] == b and ARGV[3] == a)) then
  return {}
end
redis.call('del', KEYS[1], KEYS[3], KEYS[4])
for _, side in ipairs({'caller', 'callee'}) do
  redis.call('zrem', KEYS[2], ARGV[1] .. ' ' .. side .. ' code', ARGV[1] .. ' ' .. side .. ' rearm')
end
if ARGV[4] ~= '' then
  redis.call('select', ARGV[4])        -- for the rest of this script only (Redis >= 7)
  redis.call('del', ARGV[1])
end
return false
""")

_CLAIM_DUE = Script(1, """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('zrem', KEYS[1], unpack(due)) end
return due
""")


def _flat(mapping):
    return [x for item in mapping.items() for x in item]


_UPDATE_IF_EXISTS = Script(1, """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], unpack(ARGV, 2))
  redis.call('expire', KEYS[1], ARGV[1])
  return redis.call('hmget', KEYS[1], 'x_phase', 'x_a', 'x_c', 'x_join')
end
return false
""")

_UPDATE_IF_SENDER = Script(1, """
-- KEYS: call record;  ARGV: ttl, the sender side's address field, the sender, field/value pairs
if redis.call('exists', KEYS[1]) == 0 then return false end
local r = redis.call('hmget', KEYS[1], 'x_phase', 'x_a', 'x_c', 'x_join', ARGV[2])
local out = {r[1] or '', r[2] or '', r[3] or '', r[4] or ''}
if (out[1] ~= '' or out[4] ~= '') and r[5] ~= ARGV[3] then out[5] = 0; return out end
redis.call('hset', KEYS[1], unpack(ARGV, 4))
redis.call('expire', KEYS[1], ARGV[1])
out[5] = 1
return out
""")
