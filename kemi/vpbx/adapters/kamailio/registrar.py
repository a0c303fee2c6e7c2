"""REGISTER (the registrar: bindings in Redis) and OPTIONS outside a dialog."""
import time

from vpbx.adapters.redis.resp import RespConnectionError
from vpbx.core import registration, routing
from vpbx.core.routing import address


class Registrar:
    def __init__(self, store, sip, guard, auth):
        self.store, self.sip, self.guard, self.auth = store, sip, guard, auth

    def route_options(self):
        """OPTIONS to the proxy (keepalives, monitoring): 200, counted against the source's
        rate — and still 200, uncounted, while Redis cannot be reached."""
        ip, port = self.sip.pvs("$si", "$sp")
        hostport, now = address(ip, port), time.time()
        if self.guard.held("options", hostport, now):
            return
        try:
            rate = self.store.options_rate(hostport, ip, now)
        except RespConnectionError:
            rate = None
        if self.guard.refused("options", hostport, rate, now):
            return
        self.sip.sl_reply(200, "OK")

    def route_register(self):
        sip = self.sip
        domain, user, ip, port = sip.pvs("$td", "$tU", "$si", "$sp")
        hostport, now = address(ip, port), time.time()
        if self.guard.held("register", hostport, now):
            return
        known, secret, binding, rate = self.store.register_facts(domain, user, hostport, ip, now)
        if self.guard.refused("register", hostport, rate, now):
            return
        decision = routing.route_register(domain, user, known, secret, self.auth.decoy_secret)
        if not self.auth.authenticated(decision, domain, user) or self.auth.rejected(decision):
            return
        try:
            contact = registration.requested_contact(sip.header_list("Contact"))
            seconds = registration.lifetime(contact, sip.pv("$hdr(Expires)")) if contact else None
        except registration.RegisterError as refused:
            if refused.headers:
                sip.add_reply_header(refused.headers)
            sip.sl_reply(refused.code, refused.reason)
            return
        if contact is None:                         # a query: report the current binding
            if binding:
                left = max(0, int(float(binding["expires_at"]) - time.time()))
                sip.add_reply_header(f"Contact: <{binding['contact']}>;expires={left}\r\n")
        elif seconds == 0:
            self.store.unbind(domain, user)
        else:
            assert seconds is not None
            self.store.bind(domain, user, {
                "contact": contact.uri, "src": sip.source(), "socket": sip.local_socket(),
                "expires_at": f"{time.time() + seconds:.0f}", "user_agent": sip.pv("$ua"),
                "callid": sip.pv("$ci"), "cseq": sip.pv("$cs")}, seconds)
            sip.add_reply_header(f"Contact: <{contact.uri}>;expires={seconds}\r\n")
        sip.sl_reply(200, "OK")
