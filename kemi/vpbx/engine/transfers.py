"""The transfer engine: feeds events to the pure state machine (transfer.py) and carries out
its effects on rtpengine (media.py) and SIP (the `sip` adapter: uac.Uac in Kamailio).

Each event goes plan, commit, act: plan.py computes every change to the call record, the
store writes all of it with the state in one compare-and-set (timers and transfer events
included, so none is lost or doubled; ending a call is a versioned delete), and only then
are SIP requests and rtpengine commands sent. Any node and any process may handle any event
of any call; an event that lost the compare-and-set is planned again on the newer record.
"""
import logging
import os
import time
from collections.abc import Mapping

from vpbx.core import limits, plan as planning, routing, sdp as sdp_text, settings, transfer as t
from vpbx.core.call import SIDES, Leg, legs_of, peer
from vpbx.engine import codes
from vpbx.engine.ports import CallStore, MediaCall, MediaFor, Record, Requests, SoundFiles

log = logging.getLogger("vpbx.engine")
RETRIES = 5
TRUNK_TO_TRUNK = "trunk_to_trunk"           # refusal reasons of Transfer (transfer.py)
TOO_MANY_TRANSFERS = "too_many_transfers"
REPLANS = 4         # reads of missing facts for one plan (each chained failure may need one)


class Engine:
    def __init__(self, store: CallStore, media: MediaFor, sip: Requests, sounds: SoundFiles) -> None:
        """store: the per-call store; media: Call-ID -> its rtpengine call (media.Media);
        sip: the proxy's own requests (uac.Uac); sounds: the files played (sounds.Sounds)."""
        self.store, self.media, self.sip, self.sounds = store, media, sip, sounds
        self.throttle = limits.Throttle()       # log lines of refused transfers

    # ---- events in ----------------------------------------------------------

    def on_code(self, callid: str, side: str, code: str) -> list[t.Effect]:
        """A completed feature code of `side` -> the transfer event it means, handled."""
        call = self.store.call_load(callid)
        if not call:
            return []
        state = t.state_of(call)
        event: t.Event | None = None
        facts = planning.Facts()
        if state.phase in (t.RINGING, t.CONSULT):
            event = t.Return(side) if code == t.RETURN_CODE else None
        elif state.phase == t.TALKING:
            event, facts = self.transfer_event(call, state, side, code[1:])
        if event is None:
            log.info("vpbx: %s %s: code %s ignored in phase %s", callid, side, code, state.phase)
            return []
        return self.handle(callid, event, call, facts=facts)

    def transfer_event(self, call: Record, state: t.State, side: str,
                       ext: str) -> tuple[t.Transfer, planning.Facts]:
        """The Transfer event of `side` asking for `ext`, refused when `ext` is no valid
        target, and what was read to decide (the plan needs no second look)."""
        other = state.c if side == state.a else state.a
        own, others = Leg(call, side).ext, Leg(call, other).ext
        facts = planning.Facts()
        exact, _ = self.store.ext_match(call["tenant"], ext)
        external = not exact and routing.external_target(ext, call.get("transfer_external", ""))
        if external and Leg(call, other).role == "trunk" and call.get(
                "transfer_trunk_to_trunk") != "on":
            refused = TRUNK_TO_TRUNK        # a client on a trunk sent out again: toll fraud
        elif external:
            trunk = self.store.outbound_trunk(call["tenant"])
            facts = planning.Facts(outbound=trunk, outbound_known=True)
            refused = "" if trunk else "no_outbound_trunk"
        elif not exact:
            refused = "no_such_extension"
        elif ext in (own, others):
            refused = "own_call"
        else:
            binding = self.store.binding(call["tenant"], ext)
            facts = planning.Facts(bindings={ext: binding})
            refused = "" if binding else "not_registered"
        if not refused and not self.transfer_allowed(call):
            refused = TOO_MANY_TRANSFERS
        return t.Transfer(side, ext, leg_ext=own, refused=refused, external=external), facts

    def transfer_allowed(self, call: Record) -> bool:
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

    def handle(self, callid: str, event: t.Event, call: Record | None = None,
               fields: Mapping[str, str] | None = None,
               facts: planning.Facts | None = None) -> list[t.Effect]:
        """Apply one event: plan, commit, act. `fields`: what the message that brought the
        event tells about its leg (a 2xx's tag, SDP, source), committed with the state;
        `facts`: what was read for the event already (plan.Facts).
        -> the effects that concern the message being processed (Accept, Relay) for the
        caller to carry out."""
        for _ in range(RETRIES):
            call = call or self.store.call_load(callid)
            if not call:
                return []
            call = {**call, **(fields or {}), "callid": callid}
            plan = self.plan(call, event, facts or planning.Facts())
            if plan is None:
                if fields:                  # nothing to do for the machine: only the leg's facts
                    self.store.call_update(callid, fields)
                return []
            changes = {**(fields or {}), **plan.fields}
            if self.store.transfer_save(
                    callid, call.get("x_v", ""), changes, plan.due, plan.events, plan.others,
                    ends=(legs_of(call), planning.taken_over(call)) if plan.ends else None):
                break
            call = None                     # another event came first: plan again
        else:
            log.warning("vpbx: %s: %s lost to concurrent updates", callid, event)
            return []
        log.info("vpbx: %s: %s: %s -> %s", callid, event, t.state_of(call).phase, plan.state.phase)
        return self.act({**call, **changes}, plan)

    def plan(self, call: Record, event: t.Event, facts: planning.Facts) -> planning.Plan | None:
        """plan.plan, reading what it still needs first (bindings, the outbound trunk, other
        dialogs' records), with fresh rtpengine tags for the legs it calls."""
        for _ in range(REPLANS):
            result = planning.plan(call, event, facts, time.time())
            if not isinstance(result, planning.Needs):
                return result
            facts = self.facts(call, facts, result)
        raise RuntimeError(f"no plan for {event} after {REPLANS} reads")

    def facts(self, call: Record, facts: planning.Facts, needs: planning.Needs) -> planning.Facts:
        tenant = call["tenant"]
        bindings = {**facts.bindings, **{ext: self.store.binding(tenant, ext) for ext in needs.exts}}
        others = dict(facts.others)
        for other in needs.others:
            others[other] = {**self.store.call_load(other), "callid": other}
            if len(others[other]) == 1:
                others[other] = {}          # that dialog has ended
        tags = {**facts.tags, **{leg: f"{leg}.{os.urandom(6).hex()}" for leg in needs.tags}}
        outbound, known = facts.outbound, facts.outbound_known
        if needs.outbound:
            outbound, known = self.store.outbound_trunk(tenant), True
        return planning.Facts(bindings, outbound, known, others, tags)

    def renegotiate(self, callid: str, leg: str, sdp: str) -> tuple[str, str] | None:
        """A re-INVITE/UPDATE with SDP from a leg the proxy joins itself: relink it with its
        partner using the new SDP. -> (the answer SDP for the leg, the Contact for the 2xx),
        or None while the leg is not talking to anyone (on hold during a transfer: 491)."""
        call = self.store.call_load(callid)
        if not call:
            return None
        state = t.state_of(call)
        pair = {t.TALKING: (state.a, state.c), t.CONSULT: (state.a, state.b)}.get(state.phase)
        if not pair or leg not in pair:
            return None
        other = pair[1] if leg == pair[0] else pair[0]
        self.store.call_update(callid, {f"{leg}_sdp": sdp})
        call = {**call, f"{leg}_sdp": sdp}
        return self.link(self.media(callid), call, leg, other), self.contact_for(call, leg)

    def contact_for(self, call: Mapping[str, str], leg: str) -> str:
        """The Contact of the proxy's 2xx to a leg's request: the peer the leg has always
        seen (its original dialog's other end), or the proxy for the legs it called."""
        if leg in SIDES:
            contact = call.get(f"{peer(leg)}_contact", "")
            return contact if contact.startswith("<") else f"<{contact}>"
        this = Leg(call, leg)
        return self.sip.proxy_contact(this.socket, this.callid)

    def link(self, media: MediaCall, call: Mapping[str, str], x: str, y: str) -> str:
        """Link legs x and y; their DTMF guards as they may type codes. -> the SDP for x."""
        answer = media.link((Leg(call, x).rtp, Leg(call, x).sdp), (Leg(call, y).rtp, Leg(call, y).sdp),
                            [Leg(call, leg).rtp for leg in legs_of(call) if Leg(call, leg).rtp])
        for leg in (x, y):
            if codes.may_type_codes(call, leg):
                media.guard(Leg(call, leg).rtp)
            else:
                media.unguard(Leg(call, leg).rtp)
        return answer

    # ---- effects out --------------------------------------------------------

    def act(self, call: Record, plan: planning.Plan) -> list[t.Effect]:
        """Carry out a committed plan's effects (no Redis writes here). -> Accept and Relay,
        for the routing of the message being processed."""
        callid = call["callid"]
        media = self.media(callid)
        message: list[t.Effect] = []
        linked = {}         # leg -> the SDP for it from its last Link here
        for e, args in plan.acts:
            try:
                if isinstance(e, t.Call) and e.join:
                    sdp = media.offer_new(Leg(call, e.leg).rtp, Leg(call, e.client).rtp,
                                          Leg(call, e.client).sdp)
                    self.sip.reinvite(call, e.leg, sdp, self.contact_for(call, e.leg), args["cseq"])
                elif isinstance(e, t.Call):
                    sdp = media.offer_new(Leg(call, e.leg).rtp, Leg(call, e.client).rtp,
                                          Leg(call, e.client).sdp)
                    self.sip.invite(call, e.leg, sdp, (Leg(call, e.leg).get("from"), args["pai"],
                                                       args["privacy"]), args["referred_by"])
                elif isinstance(e, t.Hold):
                    media.play(Leg(call, e.leg).rtp, self.hold_sound(call))
                    for muted in e.mute:
                        media.mute(Leg(call, muted).rtp)
                elif isinstance(e, t.Ringback):
                    media.play(Leg(call, e.leg).rtp, self.ringback(call))
                elif isinstance(e, t.Tone):
                    media.play(Leg(call, e.leg).rtp, self.sounds.failure(), repeat=1)
                elif isinstance(e, t.Link):
                    linked[e.x] = self.link(media, call, e.x, e.y)
                elif isinstance(e, t.Resume):
                    self.resume(call, e.leg, linked.get(e.leg), args["cseq"])
                elif isinstance(e, t.Drop):
                    media.drop(Leg(call, e.leg).rtp)
                elif isinstance(e, t.Cancel):
                    self.sip.cancel(call, e.leg)
                elif isinstance(e, t.Bye):
                    self.sip.bye(call, e.leg, args["cseq"])
                elif isinstance(e, t.Notify):
                    self.sip.notify(call, e.leg, e.status, e.final, args["cseq"])
                elif isinstance(e, t.Release):
                    # The join is done: the phone's end of the taken-over dialog gets a BYE
                    # (as from B), and that dialog's media call goes (B's media is here now).
                    self.sip.bye(args["other"], args["side"], args["cseq"])
                    self.media(args["other"]["callid"]).end()
                elif isinstance(e, t.EndCall):
                    media.end()
                elif isinstance(e, (t.Accept, t.Relay)):
                    message.append(e)
            except Exception:
                # One failed effect must not stop the others (a BYE that cannot be sent must
                # not leave the media call behind).
                log.exception("vpbx: %s: effect %s failed", callid, e)
        return message

    def resume(self, call: Record, leg: str, sdp: str | None, cseq: int) -> None:
        """The client the phone had put on hold is taken off hold: a re-INVITE as the phone,
        with its media address unchanged (the SDP its link gave it), in the session the
        client knows."""
        if sdp:
            offer = sdp_text.reoffer(sdp, call.get(f"{peer(leg)}_sdp", ""))
            self.sip.reinvite(call, leg, offer, self.contact_for(call, leg), cseq)

    def hold_sound(self, call: Mapping[str, str]) -> str:
        if call.get("transfer_hold_media") == "ringback":
            return self.ringback(call)
        return self.sounds.music()

    def ringback(self, call: Mapping[str, str]) -> str:
        return self.sounds.ringback(int(call.get("transfer_ringback_hz") or 425),
                                    int(call.get("transfer_ringback_on_ms") or 1000),
                                    int(call.get("transfer_ringback_off_ms") or 4000))
