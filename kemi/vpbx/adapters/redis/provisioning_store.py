"""Redis adapter of provisioning: tenants, extensions, trunks, tenant settings, request rate
limits (the keys written by `scripts/vpbx`), and what tools look up, through redis-py.

The proxy's per-call path is store.Store on the lean client (resp.Client); the key names are
store.py's, shared by both. The key schema is documented in docs/redis-keys.md.
"""
from vpbx.adapters.redis.store import (LIMITS, PREFIX, TENANTS, TRUNK_REFER, TRUNKS, extidx_key,
                                       exts_key, loc_key, tenant_key)
from vpbx.core import limits, provisioning, settings


class NotFound(ValueError):
    pass


class ProvisioningStore:
    """`redis`: a redis-py client (decode_responses=True)."""

    def __init__(self, redis):
        self.r = redis

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
            p.delete(tenant_key(domain), exts_key(domain), extidx_key(domain), *bindings)
            if trunks:
                p.hdel(TRUNKS, *trunks)
                p.hdel(TRUNK_REFER, *trunks)
            p.execute()

    def tenant_list(self):
        return sorted(self.r.smembers(TENANTS))

    def ext_add(self, domain, ext, password=None):
        domain = self._need_tenant(domain)
        ext = provisioning.extension(ext)
        secret = (provisioning.ha1(ext, domain, provisioning.password(password))
                  if password is not None else "")
        if not self.r.hsetnx(exts_key(domain), ext, secret):
            raise ValueError(f"extension {ext} exists already in {domain}")
        self.r.zadd(extidx_key(domain), {ext: 0})

    def ext_del(self, domain, ext):
        domain = self._need_tenant(domain)
        ext = provisioning.extension(ext)
        if not self.r.hdel(exts_key(domain), ext):
            raise NotFound(f"no extension {ext} in {domain}")
        self.r.zrem(extidx_key(domain), ext)
        self.r.delete(loc_key(domain, ext))      # its binding (store.Store.unbind)

    def ext_list(self, domain):
        """[(ext, has_password)] sorted by number."""
        domain = self._need_tenant(domain)
        items = self.r.hgetall(exts_key(domain)).items()
        return sorted(((e, bool(s)) for e, s in items), key=lambda item: int(item[0]))

    def trunk_add(self, domain, hostport, outbound=False, refer="terminate"):
        """refer: what the proxy does with a phone's REFER aimed at this trunk's party:
        "terminate" (default; answer it and transfer itself) or "pass" (relay it)."""
        domain = self._need_tenant(domain)
        hostport = provisioning.hostport(hostport)
        if refer not in ("pass", "terminate"):
            raise ValueError(f"refer takes pass or terminate, not {refer!r}")
        owner = self.r.hget(TRUNKS, hostport)
        if owner and owner != domain:
            raise ValueError(f"{hostport} is already a trunk of tenant {owner}")
        with self.r.pipeline() as p:
            p.hset(TRUNKS, hostport, domain)
            if outbound:
                p.hset(tenant_key(domain), "outbound", hostport)
            if refer == "pass":
                p.hset(TRUNK_REFER, hostport, "pass")
            else:
                p.hdel(TRUNK_REFER, hostport)
            p.execute()
        return hostport

    def trunk_del(self, domain, hostport):
        domain = self._need_tenant(domain)
        hostport = provisioning.hostport(hostport)
        if self.r.hget(TRUNKS, hostport) != domain:
            raise NotFound(f"{hostport} is no trunk of {domain}")
        with self.r.pipeline() as p:
            p.hdel(TRUNKS, hostport)
            p.hdel(TRUNK_REFER, hostport)
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

    # ---- abuse limits ----------------------------------------------------

    def limits_show(self):
        """{kind: requests a second in force} (vpbx limits)."""
        stored = self.r.hgetall(LIMITS)
        return {kind: limits.effective_rate(kind, stored.get(kind)) for kind in limits.KINDS}

    def limit_set(self, kind, text):
        rate = limits.parse_rate(kind, text)
        self.r.hset(LIMITS, kind, rate)
        return rate

    # ---- tools ------------------------------------------------------------

    def call_keys(self):
        """The dialog records' keys (vpbx status, tests' leak checks)."""
        return sorted(self.r.scan_iter(match=PREFIX + "call:*", count=1000))
