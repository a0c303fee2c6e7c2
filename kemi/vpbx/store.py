"""Redis adapter: provisioning keys and the per-call dialog record.

The key schema is documented in docs/redis-keys.md; keep the two in step.
"""
import hashlib

from . import provisioning, resp, settings

PREFIX = "vpbx:"
TENANTS = PREFIX + "tenants"            # set of tenant domains
TRUNKS = PREFIX + "trunks"              # hash  IP:PORT -> tenant domain

CALL_TTL = 6 * 3600                     # safety net; refreshed by in-dialog requests


def tenant_key(domain):
    return f"{PREFIX}tenant:{domain}"    # hash: settings + "outbound"


def exts_key(domain):
    return f"{PREFIX}exts:{domain}"      # hash: extension -> HA1 ("" = open)


def loc_key(domain, ext):
    return f"{PREFIX}loc:{domain}:{ext}"     # hash: the extension's registered binding


def call_key(callid):
    # Hash tag: every key of one call lands in one Redis Cluster slot.
    return f"{PREFIX}call:{{{callid}}}"


class NotFound(ValueError):
    pass


def _as_dict(flat):
    """HGETALL's reply as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


class Store:
    """Provisioning goes through redis-py (`redis`, None in the proxy); the per-call operations
    through the lean client `fast` (resp.Client), made from redis-py's settings unless given."""

    def __init__(self, redis, fast=None):
        self.r = redis
        if fast is None:
            kw = redis.connection_pool.connection_kwargs
            fast = resp.Client(kw.get("host", "127.0.0.1"), kw.get("port", 6379), kw.get("db", 0),
                               kw.get("username"), kw.get("password"))
        self.fast = fast

    # ---- provisioning (the CLI) ------------------------------------------

    def _need_tenant(self, domain):
        domain = provisioning.domain(domain)
        if not self.r.sismember(TENANTS, domain):
            raise NotFound(f"unknown tenant {domain!r} (see: vpbx tenant list)")
        return domain

    def tenant_add(self, domain):
        domain = provisioning.domain(domain)
        if not self.r.sadd(TENANTS, domain):
            raise ValueError(f"tenant {domain!r} exists already")
        return domain

    def tenant_del(self, domain):
        domain = self._need_tenant(domain)
        trunks = [hp for hp, d in self.r.hgetall(TRUNKS).items() if d == domain]
        bindings = list(self.r.scan_iter(match=loc_key(domain, "*")))
        with self.r.pipeline() as p:
            p.srem(TENANTS, domain)
            p.delete(tenant_key(domain), exts_key(domain), *bindings)
            if trunks:
                p.hdel(TRUNKS, *trunks)
            p.execute()

    def tenant_list(self):
        return sorted(self.r.smembers(TENANTS))

    def ext_add(self, domain, ext, password=None):
        domain = self._need_tenant(domain)
        ext = provisioning.extension(ext)
        secret = provisioning.ha1(ext, domain, provisioning.password(password)) if password is not None else ""
        if not self.r.hsetnx(exts_key(domain), ext, secret):
            raise ValueError(f"extension {ext} exists already in {domain}")

    def ext_del(self, domain, ext):
        domain = self._need_tenant(domain)
        ext = provisioning.extension(ext)
        if not self.r.hdel(exts_key(domain), ext):
            raise NotFound(f"no extension {ext} in {domain}")
        self.unbind(domain, ext)

    def ext_list(self, domain):
        """[(ext, has_password)] sorted by number."""
        domain = self._need_tenant(domain)
        items = self.r.hgetall(exts_key(domain)).items()
        return sorted(((e, bool(s)) for e, s in items), key=lambda item: int(item[0]))

    def trunk_add(self, domain, hostport, outbound=False):
        domain = self._need_tenant(domain)
        hostport = provisioning.hostport(hostport)
        owner = self.r.hget(TRUNKS, hostport)
        if owner and owner != domain:
            raise ValueError(f"{hostport} is already a trunk of tenant {owner}")
        with self.r.pipeline() as p:
            p.hset(TRUNKS, hostport, domain)
            if outbound:
                p.hset(tenant_key(domain), "outbound", hostport)
            p.execute()
        return hostport

    def trunk_del(self, domain, hostport):
        domain = self._need_tenant(domain)
        hostport = provisioning.hostport(hostport)
        if self.r.hget(TRUNKS, hostport) != domain:
            raise NotFound(f"{hostport} is no trunk of {domain}")
        with self.r.pipeline() as p:
            p.hdel(TRUNKS, hostport)
            if self.r.hget(tenant_key(domain), "outbound") == hostport:
                p.hdel(tenant_key(domain), "outbound")
            p.execute()

    def trunk_list(self, domain=None):
        """[(hostport, tenant, is_outbound)]"""
        rows = []
        for hostport, owner in sorted(self.r.hgetall(TRUNKS).items()):
            if domain and owner != domain:
                continue
            rows.append((hostport, owner, self.r.hget(tenant_key(owner), "outbound") == hostport))
        return rows

    def setting_set(self, domain, name, value):
        domain = self._need_tenant(domain)
        text = settings.normalise(name, value)
        self.r.hset(tenant_key(domain), name, text)
        return text

    def tenant_show(self, domain):
        domain = self._need_tenant(domain)
        stored = self.r.hgetall(tenant_key(domain))
        return settings.effective(stored), stored.get("outbound")

    # ---- registrations ----------------------------------------------------

    def bind(self, domain, ext, binding, seconds):
        """Replace the extension's binding; Redis expires it with the registration."""
        key = loc_key(domain, ext)
        self.fast.pipeline(("MULTI",), ("DEL", key), ("HSET", key, *_flat(binding)),
                           ("EXPIRE", key, seconds), ("EXEC",))

    def unbind(self, domain, ext):
        self.fast.pipeline(("DEL", loc_key(domain, ext)))

    # ---- routing lookups (the proxy; one round trip each) ---------------

    def invite_facts(self, source, from_domain, from_user, ruri_user):
        """-> (trunk's tenant or None, tenant known, tenant hash, caller secret, callee secret,
        callee binding).

        Secrets: None = no such extension, "" = open, else HA1. Binding: {} when the callee is
        not registered. Reads the From domain's tenant; a call from a trunk of another tenant
        costs a second round trip."""
        trunk, tenant, known, (caller, callee), binding = self.fast.pipeline(
            ("HGET", TRUNKS, source),
            ("HGETALL", tenant_key(from_domain)),
            ("SISMEMBER", TENANTS, from_domain),
            ("HMGET", exts_key(from_domain), from_user, ruri_user),
            ("HGETALL", loc_key(from_domain, ruri_user)))
        if trunk and trunk != from_domain:
            tenant, callee, binding = self.fast.pipeline(
                ("HGETALL", tenant_key(trunk)),
                ("HGET", exts_key(trunk), ruri_user),
                ("HGETALL", loc_key(trunk, ruri_user)))
            return trunk, True, _as_dict(tenant), None, callee, _as_dict(binding)
        return trunk, bool(known), _as_dict(tenant), caller, callee, _as_dict(binding)

    def register_facts(self, domain, user):
        """-> (tenant known, secret as in invite_facts, current binding)"""
        known, secret, binding = self.fast.pipeline(
            ("SISMEMBER", TENANTS, domain),
            ("HGET", exts_key(domain), user),
            ("HGETALL", loc_key(domain, user)))
        return bool(known), secret, _as_dict(binding)

    # ---- dialog record ----------------------------------------------------

    def call_save(self, callid, record):
        key = call_key(callid)
        self.fast.pipeline(("HSET", key, *_flat(record)), ("EXPIRE", key, CALL_TTL))

    def call_update(self, callid, fields):
        """Update an existing record (in-dialog requests); never recreates an ended call."""
        args = (1, call_key(callid), CALL_TTL, *_flat(fields))
        (reply,) = self.fast.pipeline(("EVALSHA", _UPDATE_SHA, *args), raise_errors=False)
        if isinstance(reply, resp.RespError) and str(reply).startswith("NOSCRIPT"):
            self.fast.pipeline(("EVAL", _UPDATE_IF_EXISTS, *args))    # loads it for next time
        elif isinstance(reply, resp.RespError):
            raise reply

    def call_delete(self, callid):
        self.fast.pipeline(("DEL", call_key(callid)))

    def call_keys(self):
        return sorted(self.r.scan_iter(match=PREFIX + "call:*", count=1000))


def _flat(mapping):
    return [x for item in mapping.items() for x in item]


_UPDATE_IF_EXISTS = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], unpack(ARGV, 2))
  redis.call('expire', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
_UPDATE_SHA = hashlib.sha1(_UPDATE_IF_EXISTS.encode()).hexdigest()
