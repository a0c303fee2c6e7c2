"""Fakes of the adapters' outside world, for unit tests of the adapters and the engine.

Import them as `from fakes import RecordingNg` (tests/conftest.py puts tests/ on sys.path)."""
from vpbx.ngclient import NgError

OK = {"result": "ok"}
DEFAULT_REPLIES = {"ping": {"result": "pong"}}


class RecordingNg:
    """Stands in for ngclient.NgClient: records every command and answers canned replies.

    - `commands`: [(command, args)] in order, args as the caller passed them (keyword names with
      underscores, as to NgClient.command; `call_id` included).
    - `replies`: command -> reply dict, or a function(args) -> reply dict; `{"result": "ok"}`
      for any other command. Each answer is a fresh copy.
    - `errors`: command -> the error reason rtpengine would give, or a function(args) -> the
      reason or None (None: no error for those args). The command is recorded, then
      NgError("rtpengine <command>: <reason>") is raised, as NgClient does.
    - `ping()` and `calls()` answer like NgClient's: "pong", and the Call-IDs offered and
      not deleted since.
    """

    def __init__(self, replies=None, errors=None):
        self.commands = []
        self.replies = {**DEFAULT_REPLIES, **(replies or {})}
        self.errors = dict(errors or {})

    def command(self, name, **args):
        self.commands.append((name, args))
        reason = self.errors.get(name)
        if callable(reason):
            reason = reason(args)
        if reason is not None:
            raise NgError(f"rtpengine {name}: {reason}")
        reply = self.replies.get(name, OK)
        if callable(reply):
            reply = reply(args)
        return dict(reply)

    def ping(self):
        return self.command("ping").get("result") == "pong"

    def calls(self):
        held = []
        for name, args in self.commands:
            if name == "offer" and args.get("call_id") not in held:
                held.append(args.get("call_id"))
            elif name == "delete" and args.get("call_id") in held:
                held.remove(args.get("call_id"))
        return held

    # ---- for assertions -------------------------------------------------------------

    def names(self):
        """The commands sent, in order."""
        return [name for name, _ in self.commands]

    def sent(self, *keys):
        """[(command, the args named by keys, None where absent)], e.g. sent("from_tag")."""
        return [(name, *(args.get(k) for k in keys)) for name, args in self.commands]

    def clear(self):
        self.commands.clear()


class FakeStore:
    """A dict-backed stand-in for store.Store's per-call part, as the engine uses it. Each
    method is one Redis round trip in the real store: `trips` lists their names in order."""

    def __init__(self, calls=None, bindings=None, outbound=None, exts=()):
        self.calls = {cid: dict(rec) for cid, rec in (calls or {}).items()}
        self.bindings = dict(bindings or {})       # (tenant, ext) -> binding
        self.outbound = dict(outbound or {})       # tenant -> IP:PORT
        self.exts = set(exts)                      # (tenant, ext)
        self.due, self.events, self.trips = [], [], []
        self.transfers = 0

    def _trip(self, name):
        self.trips.append(name)

    def call_load(self, callid):
        self._trip("call_load")
        return dict(self.calls.get(callid, {}))

    def call_update(self, callid, fields):
        self._trip("call_update")
        if callid in self.calls:
            self.calls[callid].update(fields)

    def transfer_save(self, callid, version, fields, due=(), events=(), others=None, ends=None):
        self._trip("transfer_save")
        record = self.calls.get(callid)
        if record is None or record.get("x_v", "") != version:
            return False
        for other, change in (others or {}).items():
            if other in self.calls:
                self.calls[other].update(change["set"])
                for name in change["unset"]:
                    self.calls[other].pop(name, None)
        if ends is not None:
            del self.calls[callid]
            for other in ends[1]:
                self.calls.pop(other, None)
        else:
            record.update(fields)
            record["x_v"] = str(int(version or 0) + 1)
        self.due.extend(due)
        self.events.extend(events)
        return True

    def binding(self, tenant, ext):
        self._trip("binding")
        return dict(self.bindings.get((tenant, ext), {}))

    def outbound_trunk(self, tenant):
        self._trip("outbound_trunk")
        return self.outbound.get(tenant)

    def ext_match(self, tenant, digits):
        self._trip("ext_match")
        return (tenant, digits) in self.exts, any(
            t == tenant and e.startswith(digits) and e != digits for t, e in self.exts)

    def transfer_counted(self, tenant, now):
        from vpbx import limits
        self._trip("transfer_counted")
        self.transfers += 1
        return limits.Count(self.transfers, 0)

    def transfer_uncounted(self, tenant, now):
        self._trip("transfer_uncounted")
        self.transfers -= 1


class RecordingSip:
    """Stands in for the engine's `sip` adapter (uac.Uac): records the requests it was asked
    to send, as (method, leg, details)."""

    def __init__(self):
        self.sent = []

    def invite(self, call, leg, sdp, identity, referred_by):
        self.sent.append(("INVITE", leg, {"from": identity[0], "pai": identity[1],
                                          "privacy": identity[2], "referred_by": referred_by,
                                          "sdp": sdp, "target": call[f"{leg}_target"]}))

    def reinvite(self, call, leg, sdp, contact, cseq):
        self.sent.append(("re-INVITE", leg, {"cseq": cseq, "sdp": sdp}))

    def bye(self, call, leg, cseq):
        self.sent.append(("BYE", leg, {"cseq": cseq, "callid": call["callid"]}))

    def notify(self, call, leg, status, final, cseq):
        self.sent.append(("NOTIFY", leg, {"cseq": cseq, "status": status, "final": final}))

    def cancel(self, call, leg):
        self.sent.append(("CANCEL", leg, {}))

    def proxy_contact(self, socket_text):
        return f"<sip:vpbx@{socket_text.partition(':')[2]}>"

    def methods(self):
        return [(method, leg) for method, leg, _ in self.sent]
