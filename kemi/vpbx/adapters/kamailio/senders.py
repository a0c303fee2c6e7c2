"""Who sent a request: the sender check of every request the proxy acts on (docs/security.md).
The From tag only says which side a request claims to be from; the source address says
whether it is that side."""
import logging

from vpbx.core.call import Leg

log = logging.getLogger("vpbx.senders")


class Senders:
    def __init__(self, store, sip):
        self.store, self.sip = store, sip

    def sent_by(self, call, side):
        """Whether the request being routed comes from `side` of the call: from the address
        the record holds for it (proto:ip:port) or, for an extension, from where it is
        registered now (its NAT binding may have moved since the call began)."""
        sender, party = self.sip.source(), Leg(call, side)
        if party.src == sender:
            return True
        ext = party.ext if party.role == "ext" else ""
        return bool(ext) and self.store.binding(call["tenant"], ext).get("src") == sender

    def refuse(self):
        """Answer a request that claims to be a party's (by its From tag) but came from
        another address: 403, and it changes nothing."""
        log.info("vpbx: %s %s from %s refused: not the party's address", self.sip.pv("$rm"),
                 self.sip.pv("$ci"), self.sip.source())
        self.sip.reply(403, "Forbidden - not sent by that party of the call")
