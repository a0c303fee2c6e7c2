"""Redis adapter: provisioning keys and the per-call dialog record.

The key schema is documented in docs/redis-keys.md; keep the two in step.
"""
from . import provisioning, settings

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


class Store:
    def __init__(self, redis):
        self.r = redis
        self._update_if_exists = redis.register_script(_UPDATE_IF_EXISTS)

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
        with self.r.pipeline(transaction=True) as p:
            p.delete(key)
            p.hset(key, mapping=binding)
            p.expire(key, seconds)
            p.execute()

    def unbind(self, domain, ext):
        self.r.delete(loc_key(domain, ext))

    # ---- routing lookups (the proxy; one round trip each) ---------------

    def invite_facts(self, source, from_domain, from_user, ruri_user):
        """-> (trunk's tenant or None, tenant known, tenant hash, caller secret, callee secret,
        callee binding).

        Secrets: None = no such extension, "" = open, else HA1. Binding: {} when the callee is
        not registered. Reads the From domain's tenant; a call from a trunk of another tenant
        costs a second round trip."""
        with self.r.pipeline(transaction=False) as p:
            p.hget(TRUNKS, source)
            p.hgetall(tenant_key(from_domain))
            p.sismember(TENANTS, from_domain)
            p.hmget(exts_key(from_domain), from_user, ruri_user)
            p.hgetall(loc_key(from_domain, ruri_user))
            trunk, tenant, known, (caller, callee), binding = p.execute()
        if trunk and trunk != from_domain:
            with self.r.pipeline(transaction=False) as p:
                p.hgetall(tenant_key(trunk))
                p.hget(exts_key(trunk), ruri_user)
                p.hgetall(loc_key(trunk, ruri_user))
                tenant, callee, binding = p.execute()
            return trunk, True, tenant, None, callee, binding
        return trunk, bool(known), tenant, caller, callee, binding

    def register_facts(self, domain, user):
        """-> (tenant known, secret as in invite_facts, current binding)"""
        with self.r.pipeline(transaction=False) as p:
            p.sismember(TENANTS, domain)
            p.hget(exts_key(domain), user)
            p.hgetall(loc_key(domain, user))
            known, secret, binding = p.execute()
        return bool(known), secret, binding

    # ---- dialog record ----------------------------------------------------

    def call_save(self, callid, record):
        key = call_key(callid)
        with self.r.pipeline(transaction=False) as p:
            p.hset(key, mapping=record)
            p.expire(key, CALL_TTL)
            p.execute()

    def call_update(self, callid, fields):
        """Update an existing record (in-dialog requests); never recreates an ended call."""
        key = call_key(callid)
        self._update_if_exists(keys=[key], args=[CALL_TTL, *[x for kv in fields.items() for x in kv]])

    def call_get(self, callid):
        return self.r.hgetall(call_key(callid))

    def call_delete(self, callid):
        self.r.delete(call_key(callid))

    def call_keys(self):
        return sorted(self.r.scan_iter(match=PREFIX + "call:*", count=1000))


_UPDATE_IF_EXISTS = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], unpack(ARGV, 2))
  redis.call('expire', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
