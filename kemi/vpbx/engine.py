"""The transfer engine: feeds events to the pure state machine (transfer.py) under a Redis
compare-and-set and executes its effects on rtpengine (media.py) and SIP (the `sip` adapter,
uac.py in Kamailio). Any node and any process may handle any event of any call.

The machine's state lives in the call record as x_* fields; each leg the proxy originates
has its <leg>_* fields there too (docs/redis-keys.md). Timers and transfer events are written
in the same atomic step as the state, so none is lost or doubled.
"""
import logging
import os
import time

from . import codes, limits, routing, sdp as sdp_text, settings, transfer as t
from .media import Media
from .registration import parse_contact
from .sounds import Sounds
from .store import SIDES, peer

log = logging.getLogger("vpbx.engine")
RETRIES = 5
RETURN_CODE = "*1"
TRUNK_TO_TRUNK = "trunk_to_trunk"           # refusal reasons of Transfer (transfer.py)
TOO_MANY_TRANSFERS = "too_many_transfers"


def legs_of(call):
    """Every leg the call has had: the original sides and the originated legs."""
    return [*SIDES, *(f"leg{n}" for n in range(1, int(call.get("x_legs") or 0) + 1))]


def tag_of(call, leg):
    """The leg's rtpengine party tag."""
    return call[f"rtp_{leg}"]


def taken_over(call):
    """The Call-IDs of the dialogs the call has taken over (attended REFERs) and still holds."""
    return [call[f"{leg}_callid"] for leg in legs_of(call) if call.get(f"{leg}_release")]


def taken_over_fields(leg, other, b_side):
    """The fields of leg `leg` when it is B's end of another dialog (`other`: its record,
    with "callid"): the proxy speaks in it as the other end, the phone that asked, which it
    will hang up (`<leg>_release`)."""
    a_side = peer(b_side)
    contact = parse_contact(other[f"{b_side}_contact"]).uri
    return {f"{leg}_callid": other["callid"], f"{leg}_tag": other[f"{b_side}_tag"],
            f"{leg}_contact": contact, f"{leg}_target": contact,
            f"{leg}_src": other[f"{b_side}_src"], f"{leg}_socket": other[f"{b_side}_socket"],
            f"{leg}_from": f"<{other[f'{a_side}_uri']}>;tag={other[f'{a_side}_tag']}",
            f"{leg}_uri": other[f"{b_side}_uri"], f"{leg}_cseq": other.get(f"{a_side}_cseq") or "1",
            f"{leg}_ext": other.get(f"{b_side}_ext", ""), f"{leg}_role": other[f"{b_side}_role"],
            f"{leg}_sdp": other[f"{b_side}_sdp"], f"{leg}_release": a_side}


def state_of(call):
    return t.from_fields({k[2:]: v for k, v in call.items() if k.startswith("x_") and k != "x_v"})


def rules_of(call):
    return t.Rules(no_answer=float(call.get("transfer_no_answer_timeout") or 15),
                   recall=call.get("transfer_recall", "on") == "on",
                   recall_retries=int(call.get("transfer_recall_retries") or 2),
                   recall_delay=float(call.get("transfer_recall_delay") or 10))


def user_of(uri):
    """'sip:+4930123@host;x=y' -> '+4930123'"""
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else ""


def identity(call, client, transferor, shows_client):
    """(From, P-Asserted-Identity, Privacy) of an INVITE the proxy sends for a transfer.
    The client's number when the tenant wants it (or when `shows_client`); otherwise the
    transferor's extension."""
    tenant = call["tenant"]
    if shows_client or call.get("transfer_caller_id") == "on":
        if client == "caller":
            uri = call.get("caller_pai") or call["caller_uri"]
            name = call.get("caller_name", "").strip('"')
        else:
            uri, name = call.get(f"{client}_uri", ""), ""
        number = user_of(uri.strip("<>"))
        asserted = f"<sip:{number}@{tenant}>"
        privacy = "id" if client == "caller" and "id" in call.get("caller_privacy", "").lower() else ""
        if privacy:
            return '"Anonymous" <sip:anonymous@anonymous.invalid>', asserted, privacy
        shown = f'"{name}" {asserted}' if name and name != "<null>" else asserted
        return shown, asserted, ""
    ext = call.get(f"{transferor}_ext", "")
    return f"<sip:{ext}@{tenant}>", f"<sip:{ext}@{tenant}>", ""


class Engine:
    def __init__(self, store, ng, sip, sounds_dir, rpc_socket):
        self.store, self.ng, self.sip = store, ng, sip
        self.sounds = Sounds(sounds_dir)
        self.rpc_socket = rpc_socket
        self.throttle = limits.Throttle()       # log lines of refused transfers

    # ---- events in ----------------------------------------------------------

    def on_code(self, callid, side, code):
        """A completed feature code of `side` -> the transfer event it means, handled."""
        call = self.store.call_load(callid)
        if not call:
            return []
        state = state_of(call)
        if state.phase in (t.RINGING, t.CONSULT):
            event = t.Return(side) if code == RETURN_CODE else None
        elif state.phase == t.TALKING:
            event = self.transfer_event(call, state, side, code[1:])
        else:
            event = None
        if event is None:
            log.info("vpbx: %s %s: code %s ignored in phase %s", callid, side, code, state.phase)
            return []
        return self.handle(callid, event, call)

    def transfer_event(self, call, state, side, ext):
        other = state.c if side == state.a else state.a
        own, others = call.get(f"{side}_ext", ""), call.get(f"{other}_ext", "")
        exact, _ = self.store.ext_match(call["tenant"], ext)
        external = not exact and routing.external_target(ext, call.get("transfer_external", ""))
        if external and call.get(f"{other}_role") == "trunk" and call.get(
                "transfer_trunk_to_trunk") != "on":
            refused = TRUNK_TO_TRUNK        # a client on a trunk sent out again: toll fraud
        elif external:
            refused = "" if self.store.outbound_trunk(call["tenant"]) else "no_outbound_trunk"
        elif not exact:
            refused = "no_such_extension"
        elif ext in (own, others):
            refused = "own_call"
        elif not self.store.binding(call["tenant"], ext):
            refused = "not_registered"
        else:
            refused = ""
        if not refused and not self.transfer_allowed(call):
            refused = TOO_MANY_TRANSFERS
        return t.Transfer(side, ext, leg_ext=own, refused=refused, external=external)

    def transfer_allowed(self, call):
        """Count one more transfer of the call's tenant -> False when that is over the
        tenant's transfer_max_per_minute (the refused one is not counted)."""
        cap = int(call.get("transfer_max_per_minute",       # records from before the setting
                           settings.SETTINGS["transfer_max_per_minute"].default) or 0)
        if not cap:
            return True
        now = time.time()
        if not limits.transfers_over(cap, self.store.transfer_counted(call["tenant"], now), now):
            return True
        self.store.transfer_uncounted(call["tenant"], now)
        skipped = self.throttle.allow(f"transfers:{call['tenant']}", now)
        if skipped is not None:
            log.warning("vpbx: tenant %s: transfer refused, over %d a minute (%d more refused "
                        "since the last such line)", call["tenant"], cap, skipped)
        return False

    def handle(self, callid, event, call=None):
        """Apply one event atomically and execute its effects. -> the effects that concern
        the message being processed (Accept, Relay) for the caller to carry out."""
        for _ in range(RETRIES):
            call = call or self.store.call_load(callid)
            if not call:
                return []
            state = state_of(call)
            new, effects = t.step(state, event, rules_of(call))
            if new == state and not effects:
                return []
            fields = {f"x_{k}": v for k, v in t.to_fields(new).items()}
            fields.update(self.new_leg_fields(callid, call, effects))
            now = time.time()
            due = [(now + e.seconds, e.leg, f"t:{e.kind}") for e in effects
                   if isinstance(e, t.Schedule)]
            events = [self.event_record(callid, call, e, now) for e in effects
                      if isinstance(e, t.Publish)]
            if self.store.transfer_save(callid, call.get("x_v", ""), fields, due, events):
                call.update(fields)
                break
            call = None                     # another event came first: read again
        else:
            log.warning("vpbx: %s: %s lost to concurrent updates", callid, event)
            return []
        log.info("vpbx: %s: %s: %s -> %s", callid, event, state.phase, new.phase)
        call["callid"] = callid
        return self.execute(callid, call, new, effects)

    def renegotiate(self, callid, leg, sdp):
        """A re-INVITE/UPDATE with SDP from a leg the proxy joins itself: relink it with its
        partner using the new SDP. -> (the answer SDP for the leg, the Contact for the 2xx),
        or None while the leg is not talking to anyone (on hold during a transfer: 491)."""
        call = self.store.call_load(callid)
        if not call:
            return None
        state = state_of(call)
        pair = {t.TALKING: (state.a, state.c), t.CONSULT: (state.a, state.b)}.get(state.phase)
        if not pair or leg not in pair:
            return None
        other = pair[1] if leg == pair[0] else pair[0]
        self.store.call_update(callid, {f"{leg}_sdp": sdp})
        call[f"{leg}_sdp"] = sdp
        return self.link(Media(self.ng, callid), call, leg, other), self.contact_for(call, leg)

    def contact_for(self, call, leg):
        """The Contact of the proxy's 2xx to a leg's request: the peer the leg has always
        seen (its original dialog's other end), or the proxy for the legs it called."""
        if leg in SIDES:
            contact = call.get(f"{peer(leg)}_contact", "")
            return contact if contact.startswith("<") else f"<{contact}>"
        return self.sip.proxy_contact(call.get(f"{leg}_socket", ""))

    def link(self, media, call, x, y):
        """Link legs x and y; their DTMF guards as they may type codes. -> the SDP for x."""
        answer = media.link((tag_of(call, x), call[f"{x}_sdp"]), (tag_of(call, y), call[f"{y}_sdp"]),
                            [tag_of(call, leg) for leg in legs_of(call) if f"rtp_{leg}" in call])
        for leg in (x, y):
            if codes.may_type_codes(call, leg):
                media.guard(tag_of(call, leg))
            else:
                media.unguard(tag_of(call, leg))
        return answer

    # ---- effects out --------------------------------------------------------

    def new_leg_fields(self, callid, call, effects):
        fields = {}
        for e in effects:
            if isinstance(e, t.Call):
                tag = f"{e.leg}.{os.urandom(6).hex()}"      # store.leg_of_tag reads it
                fields.update({f"{e.leg}_ext": e.ext, f"{e.leg}_role": "trunk" if e.external else "ext",
                               f"{e.leg}_callid": self.sip.leg_callid(callid, e.leg),
                               f"{e.leg}_uri": f"sip:{e.ext}@{call['tenant']}",  # as B sees it
                               f"{e.leg}_ltag": tag, f"rtp_{e.leg}": tag, f"{e.leg}_cseq": "1"})
                if e.join:
                    other_callid, b_side = e.join.split()
                    other = self.store.call_load(other_callid)
                    if other:
                        other["callid"] = other_callid
                        fields.update(taken_over_fields(e.leg, other, b_side))
        return fields

    def event_record(self, callid, call, publish, now):
        return {"type": "transfer", "kind": publish.kind, "callid": callid,
                "tenant": call["tenant"], "at": f"{now:.3f}",
                **{k: str(v) for k, v in publish.details.items()}}

    def execute(self, callid, call, state, effects):
        media = Media(self.ng, callid)
        message = []
        linked = {}         # leg -> the SDP for it from its last Link here
        for e in effects:
            try:
                if isinstance(e, t.Call):
                    self.call_leg(callid, call, media, e)
                elif isinstance(e, t.Hold):
                    media.play(tag_of(call, e.leg), self.hold_sound(call))
                    for muted in e.mute:
                        media.mute(tag_of(call, muted))
                elif isinstance(e, t.Ringback):
                    media.play(tag_of(call, e.leg), self.ringback(call))
                elif isinstance(e, t.Tone):
                    media.play(tag_of(call, e.leg), self.sounds.failure(), repeat=1)
                elif isinstance(e, t.Link):
                    linked[e.x] = self.link(media, call, e.x, e.y)
                elif isinstance(e, t.Resume):
                    self.resume(call, e.leg, linked.get(e.leg))
                elif isinstance(e, t.Drop):
                    media.drop(tag_of(call, e.leg))
                elif isinstance(e, t.Cancel):
                    self.sip.cancel(call, e.leg, self.rpc_socket)
                elif isinstance(e, t.Bye):
                    self.store.call_update(callid, self.sip.bye(call, e.leg))
                elif isinstance(e, t.Notify):
                    self.store.call_update(callid, self.sip.notify(call, e.leg, e.status, e.final))
                elif isinstance(e, t.Release):
                    self.release(call, e.leg)
                elif isinstance(e, t.Restore):
                    self.store.call_unjoin(call[f"{e.leg}_callid"])
                    self.store.call_update(callid, {f"{e.leg}_release": ""})
                    call[f"{e.leg}_release"] = ""
                elif isinstance(e, t.EndCall):
                    media.end()
                    self.store.call_delete(callid, legs_of(call), taken_over(call))
                elif isinstance(e, (t.Accept, t.Relay)):
                    message.append(e)
            except Exception:
                # One failed effect must not stop the others (a BYE that cannot be sent must
                # not leave the media call behind).
                log.exception("vpbx: %s: effect %s failed", callid, e)
        return message

    def destination(self, call, leg, ext):
        """(Request-URI, proxy socket) for calling `ext`: its registered contact, or for an
        external number the tenant's outbound trunk. None when there is no way."""
        if call.get(f"{leg}_role") == "trunk":
            trunk = self.store.outbound_trunk(call["tenant"])
            return (f"sip:{ext}@{trunk}", call["caller_socket"]) if trunk else None
        binding = self.store.binding(call["tenant"], ext)
        return (binding["contact"], binding["socket"]) if binding else None

    def call_leg(self, callid, call, media, e):
        if e.join:
            self.join_leg(callid, call, media, e)
            return
        where = self.destination(call, e.leg, e.ext)
        if not where:
            self.handle(callid, t.Failed(e.leg, "not_registered"))
            return
        sdp = media.offer_new(tag_of(call, e.leg), tag_of(call, e.client), call[f"{e.client}_sdp"])
        # A call-back shows A who waits; a phone's REFER transfer shows B the client, as the
        # client's own INVITE would (transfer_caller_id is for code transfers only).
        shows_client = e.recall or call.get("x_mode") == "refer"
        from_hdr, pai, privacy = identity(call, e.client, e.transferor, shows_client)
        fields = {f"{e.leg}_target": where[0], f"{e.leg}_socket": where[1],
                  f"{e.leg}_from": f"{from_hdr};tag={call[f'{e.leg}_ltag']}"}
        self.store.call_update(callid, fields)
        call.update(fields)
        referred_by = (f"<sip:{call.get(f'{e.transferor}_ext')}@{call['tenant']}>"
                       if e.transferor and call.get(f"{e.transferor}_ext") else "")
        self.sip.invite(call, e.leg, sdp, (fields[f"{e.leg}_from"], pai, privacy), referred_by)

    def join_leg(self, callid, call, media, e):
        """B's end of the dialog an attended REFER names becomes leg e.leg: from now on its
        requests come to this call (x_join), and a re-INVITE moves B onto the client's media
        (rtpengine links parties of one call only)."""
        other_callid, b_side = e.join.split()
        if not call.get(f"{e.leg}_release"):        # the dialog ended before it was taken over
            self.handle(callid, t.Failed(e.leg, "unavailable"))
            return
        self.store.call_update(other_callid, {"x_join": f"{callid} {e.leg} {b_side}"})
        client_sdp = call[f"{e.client}_sdp"]
        if sdp_text.held(client_sdp):
            # The phone put the client on hold: B is offered, and later linked with, the
            # client as it will be once resumed (Resume).
            fields = {f"{e.client}_sdp": sdp_text.resumed(client_sdp), f"{e.client}_held": "1"}
            self.store.call_update(callid, fields)
            call.update(fields)
        sdp = media.offer_new(tag_of(call, e.leg), tag_of(call, e.client), call[f"{e.client}_sdp"])
        fields = self.sip.reinvite(call, e.leg, sdp, self.contact_for(call, e.leg))
        self.store.call_update(callid, fields)
        call.update(fields)

    def resume(self, call, leg, sdp):
        """The client the phone had put on hold (`<leg>_held`) is taken off hold: a re-INVITE
        as the phone, with its media address unchanged (the SDP its link gave it), in the
        session the client knows."""
        if not call.get(f"{leg}_held") or not sdp or leg not in SIDES:
            return
        offer = sdp_text.reoffer(sdp, call.get(f"{peer(leg)}_sdp", ""))
        fields = {**self.sip.reinvite(call, leg, offer, self.contact_for(call, leg)),
                  f"{leg}_held": ""}
        self.store.call_update(call["callid"], fields)
        call.update(fields)

    def release(self, call, leg):
        """The join is done: the phone's end of the taken-over dialog gets a BYE (as from B),
        and that dialog's media call goes (B's media is in this call now)."""
        other_callid = call[f"{leg}_callid"]
        other = self.store.call_load(other_callid)
        if other:
            other["callid"] = other_callid
            self.store.call_update(other_callid, self.sip.bye(other, call[f"{leg}_release"]))
        Media(self.ng, other_callid).end()

    def hold_sound(self, call):
        if call.get("transfer_hold_media") == "ringback":
            return self.ringback(call)
        return self.sounds.music()

    def ringback(self, call):
        return self.sounds.ringback(int(call.get("transfer_ringback_hz") or 425),
                                    int(call.get("transfer_ringback_on_ms") or 1000),
                                    int(call.get("transfer_ringback_off_ms") or 4000))
