"""Fakes of the adapters' outside world, for unit tests of the adapters and the engine.

Import them as `from fakes import RecordingNg` (tests/conftest.py puts tests/ on sys.path)."""
from vpbx.adapters.rtpengine.ngclient import NgError, NgUnreachable

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
    - `unreachable`: True -> every command is recorded, then NgUnreachable is raised.
    - `ping()` and `calls()` answer like NgClient's: "pong", and the Call-IDs offered and
      not deleted since.
    """

    def __init__(self, replies=None, errors=None):
        self.commands = []
        self.replies = {**DEFAULT_REPLIES, **(replies or {})}
        self.errors = dict(errors or {})
        self.unreachable = False

    def command(self, name, **args):
        self.commands.append((name, args))
        if self.unreachable:
            raise NgUnreachable(f"rtpengine 127.0.0.1:2223 {name}: [Errno 111] Connection refused")
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

    def call_update_from(self, callid, side, sender, fields):
        """As store.call_update_from: -> ((phase, a, c, join), written); (None, True) for an
        unknown call."""
        self._trip("call_update_from")
        record = self.calls.get(callid)
        if record is None:
            return None, True
        known = tuple(record.get(f, "") for f in ("x_phase", "x_a", "x_c", "x_join"))
        if (known[0] or known[3]) and record.get(f"{side}_src") != sender:
            return known, False
        record.update(fields)
        return known, True

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

    def call_end(self, callid, tags=("", "")):
        """As store.call_end: an ordinary call deleted -> None; one the engine looks after
        kept -> its record; unknown, or not the dialog of `tags` -> {}."""
        self._trip("call_end")
        record = self.calls.get(callid)
        if record is None:
            return {}
        if record.get("x_v") or record.get("x_join"):
            return dict(record)
        dialog = {record.get("caller_tag", ""), record.get("callee_tag", "")}
        if tags[0] and set(tags) != dialog:
            return {}
        del self.calls[callid]
        return None

    def trunk_refer(self, hostport):
        self._trip("trunk_refer")
        self.trunk_refer_asked = hostport
        return self.refer_modes.get(hostport, "terminate")

    refer_modes: dict = {}

    def is_tenant(self, domain):
        self._trip("is_tenant")
        return domain in {t for t, _ in self.exts}

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
        from vpbx.core import limits
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

    def proxy_contact(self, socket_text, callid):
        return f"<sip:vpbx@{socket_text.partition(':')[2]};vpbx=mark>"

    def methods(self):
        return [(method, leg) for method, leg, _ in self.sent]


class FakeSip:
    """Stands in for kamailio.Sip: the message being routed is given as pseudo-variables
    (`pv`), its method and headers; what the route does with it is recorded in `did`:
    ("reply", code, reason), ("t_reply", ...), ("sl_reply", ...), ("relay",),
    ("header", text), ("replace_header", name, value), ("rtpengine_manage", flags), ...
    `newtran_rc` is what newtran() returns (1: a new transaction)."""

    def __init__(self, method="INVITE", pv=None, side="caller", src="udp:127.0.0.1:5080",
                 sdp=False, dtmf_info=False, myself=()):
        self.method, self.side, self.src, self.sdp, self.dtmf_info = method, side, src, sdp, dtmf_info
        self.pvars = {"$rm": method, **(pv or {})}
        self.myself = set(myself)
        self.did = []
        self.newtran_rc = 1
        self.check_trans_rc = 1
        self.sent = []          # uac_send: (method, ruri, nexthop, socket, headers, body)
        self.route_params = {}
        self.shared = {}        # htable name -> {key: value}

    # reading
    def pv(self, name):
        return str(self.pvars.get(name, ""))

    def pv_int(self, name):
        return int(self.pvars.get(name) or 0)

    def pvs(self, *names):
        return [self.pv(n) for n in names]

    def set_pv(self, name, value):
        self.pvars[name] = value
        self.did.append(("set_pv", name, value))

    def is_method(self, name):
        return self.method == name

    def header_list(self, name):
        value = self.pvars.get(f"$hdr({name})")
        return [value] if value else []

    def header_values(self, name):
        return ", ".join(self.header_list(name))

    def source(self):
        return self.src

    def local_socket(self):
        return "udp:127.0.0.1:5060"

    def sender_side(self):
        return self.side

    def is_dtmf_info(self):
        return self.dtmf_info

    def has_sdp(self):
        return self.sdp

    def has_totag(self):
        return bool(self.pvars.get("$tt"))

    def is_myself(self, uri):
        return uri in self.myself

    def is_myself_ruri(self):
        return True

    # answering
    def _do(self, *what):
        self.did.append(what)

    def record_route(self, params=""):
        self._do("record_route", params)

    def route_param_is(self, name, value):
        """The proxy's Route parameters are in `route_params` ({name: value})."""
        return self.route_params.get(name) == value

    def reply(self, code, reason):
        self._do("reply", code, reason)

    def sl_reply(self, code, reason):
        self._do("sl_reply", code, reason)

    def t_reply(self, code, reason):
        self._do("t_reply", code, reason)

    def reply_error(self):
        self._do("reply_error")

    def drop(self):
        self._do("drop")

    def send_data(self, uri, data):
        self._do("send_data", uri, data)

    def newtran(self):
        self._do("newtran")
        return self.newtran_rc

    def check_trans(self):
        return self.check_trans_rc

    def relay(self):
        self._do("relay")

    def on_reply(self, route):
        self._do("on_reply", route)

    def on_failure(self, route):
        self._do("on_failure", route)

    def add_reply_header(self, text):
        self._do("header", text)

    def set_reply_body(self, body, ctype):
        self._do("body", body, ctype)

    def replace_header(self, name, value):
        self._do("replace_header", name, value)

    def rtpengine_manage(self, flags):
        self._do("rtpengine_manage", flags)
        return True

    def rtpengine_delete(self):
        self._do("rtpengine_delete")
        return True

    def shared_set(self, table, key, value):
        self.shared.setdefault(table, {})[key] = value

    def shared_items(self, table):
        return list(self.shared.get(table, {}).items())

    def shared_remove(self, table, key):
        self.shared.get(table, {}).pop(key, None)

    def uac_send(self, method, ruri, nexthop, sock, headers, body):
        self.sent.append((method, ruri, nexthop, sock, headers, body))
        return 1

    def set_from_display(self, display):
        self._do("from_display", display)

    def log(self, level, text):
        pass

    # for assertions
    def answers(self):
        """The final answers given: [(code, reason)] of reply/sl_reply/t_reply."""
        return [(w[1], w[2]) for w in self.did if w[0] in ("reply", "sl_reply", "t_reply")]

    def relayed(self):
        return ("relay",) in self.did
