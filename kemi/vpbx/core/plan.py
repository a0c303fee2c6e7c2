"""Plan, then commit, then act (pure): everything one transfer event changes in the call
record, computed before anything is written or sent.

`plan()` steps the state machine (transfer.py) and turns its effects into the record's new
fields — the state, each originated leg's target, socket and From, the CSeq of each request
the proxy will send, held SDPs, the other dialog's join reference, or the call's deletion —
and the effects to act on with their prepared arguments. The engine writes all of it in one
compare-and-set and only then acts, so a write never follows the commit, and nothing
depends on the order in which effects are carried out.

A leg the proxy cannot call (its extension is not registered; the dialog to take over has
ended) fails within the plan: the machine is stepped again with that failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from vpbx.core import sdp as sdp_text
from vpbx.core import transfer as t
from vpbx.core.call import SIDES, JoinRef, Leg, Record, cseq_field, leg_callid, legs_of, peer
from vpbx.core.registration import parse_contact

CHAINED = 8     # failures of uncallable legs followed within one plan (each ends a Call)


@dataclass(frozen=True)
class Facts:
    """What the plan needs from Redis besides the call record, read before planning:
    bindings of extensions to call, the tenant's outbound trunk, other dialogs' records (with
    "callid"), and the rtpengine tags chosen for new legs. A missing entry -> Needs."""
    bindings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    outbound: str | None = None
    outbound_known: bool = False
    others: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Needs:
    """The plan cannot be made without these (read them, then plan again)."""
    exts: tuple[str, ...] = ()
    outbound: bool = False
    others: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass
class Plan:
    state: t.State
    acts: list[tuple[t.Effect, dict[str, Any]]]     # effects in order, with prepared arguments
    fields: dict[str, str]                          # the record's changes (with the state)
    others: dict[str, dict[str, Any]]               # Call-ID -> {"set": {...}, "unset": [...]}
    ends: bool = False                              # the record goes (versioned delete)
    due: list[tuple[float, str, str]] = field(default_factory=list)    # (at, leg, "t:kind")
    events: list[dict[str, str]] = field(default_factory=list)


def rules_of(call: Record) -> t.Rules:
    return t.Rules(no_answer=float(call.get("transfer_no_answer_timeout") or 15),
                   recall=call.get("transfer_recall", "on") == "on",
                   recall_retries=int(call.get("transfer_recall_retries") or 2),
                   recall_delay=float(call.get("transfer_recall_delay") or 10))


def taken_over(call: Record) -> list[str]:
    """The Call-IDs of the dialogs the call has taken over (attended REFERs) and still holds."""
    return [Leg(call, leg).callid for leg in legs_of(call) if Leg(call, leg).release]


def taken_over_fields(leg: str, other: Record, b_side: str) -> dict[str, str]:
    """The fields of leg `leg` when it is B's end of another dialog (`other`: its record,
    with "callid"): the proxy speaks in it as the other end, the phone that asked, which it
    will hang up (`<leg>_release`)."""
    b, a = Leg(other, b_side), Leg(other, peer(b_side))
    contact = parse_contact(other[b.key("contact")]).uri
    fields = {"callid": other["callid"], "tag": b.tag, "contact": contact, "target": contact,
              "src": b.src, "socket": b.socket, "from": f"<{a.uri}>;tag={a.tag}", "uri": b.uri,
              "cseq": other.get(a.key("cseq")) or "1", "ext": b.ext, "role": b.role,
              "sdp": b.sdp, "release": a.name}
    return {f"{leg}_{k}": v for k, v in fields.items()}


def user_of(uri: str) -> str:
    """'sip:+4930123@host;x=y' -> '+4930123'"""
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else ""


def identity(call: Record, client: str, transferor: str, shows_client: bool) -> tuple[str, str, str]:
    """(From, P-Asserted-Identity, Privacy) of an INVITE the proxy sends for a transfer.
    The client's number when the tenant wants it (or when `shows_client`); otherwise the
    transferor's extension."""
    tenant = call["tenant"]
    if shows_client or call.get("transfer_caller_id") == "on":
        if client == "caller":
            uri = call.get("caller_pai") or call["caller_uri"]
            name = call.get("caller_name", "").strip('"')
        else:
            uri, name = Leg(call, client).uri, ""
        number = user_of(uri.strip("<>"))
        asserted = f"<sip:{number}@{tenant}>"
        privacy = "id" if client == "caller" and "id" in call.get("caller_privacy", "").lower() else ""
        if privacy:
            return '"Anonymous" <sip:anonymous@anonymous.invalid>', asserted, privacy
        shown = f'"{name}" {asserted}' if name and name != "<null>" else asserted
        return shown, asserted, ""
    ext = Leg(call, transferor).ext
    return f"<sip:{ext}@{tenant}>", f"<sip:{ext}@{tenant}>", ""


class _Draft:
    """The record as the plan has changed it so far, and the changes."""

    def __init__(self, record: Record):
        self.call = dict(record)
        self.fields: dict[str, str] = {}
        self.others: dict[str, dict[str, Any]] = {}

    def put(self, changes: Mapping[str, str]) -> None:
        self.fields.update(changes)
        self.call.update(changes)

    def next_cseq(self, leg: str) -> int:
        """The CSeq of the proxy's next request to `leg`, recorded as used."""
        name = cseq_field(leg)
        n = int(self.call.get(name) or 0) + 1
        self.put({name: str(n)})
        return n

    def other(self, callid: str) -> dict[str, Any]:
        return self.others.setdefault(callid, {"set": {}, "unset": []})


def _new_leg_fields(call: Record, e: t.Call, tag: str) -> dict[str, str]:
    return {f"{e.leg}_ext": e.ext, f"{e.leg}_role": "trunk" if e.external else "ext",
            f"{e.leg}_callid": leg_callid(call["callid"], e.leg),
            f"{e.leg}_uri": f"sip:{e.ext}@{call['tenant']}",      # as B sees it
            f"{e.leg}_ltag": tag, f"rtp_{e.leg}": tag, f"{e.leg}_cseq": "1"}


def _destination(call: Record, e: t.Call, facts: Facts) -> tuple[str, str] | None:
    """(Request-URI, proxy socket) for calling e.ext: its registered contact, or for an
    external number the tenant's outbound trunk; None when there is no way."""
    if e.external:
        trunk = facts.outbound
        return (f"sip:{e.ext}@{trunk}", call["caller_socket"]) if trunk else None
    binding = facts.bindings[e.ext]
    return (binding["contact"], binding["socket"]) if binding else None


def _needs(effects: list[t.Effect], draft: _Draft, facts: Facts) -> Needs | None:
    exts, others, tags, outbound = [], [], [], False
    for e in effects:
        if isinstance(e, t.Call):
            if e.leg not in facts.tags:
                tags.append(e.leg)
            if e.join:
                if e.join.callid not in facts.others:
                    others.append(e.join.callid)
            elif e.external:
                outbound = outbound or not facts.outbound_known
            elif e.ext not in facts.bindings:
                exts.append(e.ext)
        elif isinstance(e, t.Release):
            callid = Leg(draft.call, e.leg).callid
            if callid not in facts.others:
                others.append(callid)
    if exts or others or tags or outbound:
        return Needs(tuple(exts), outbound, tuple(others), tuple(tags))
    return None


def _uncallable(draft: _Draft, effects: list[t.Effect], facts: Facts) -> tuple[str, str] | None:
    """(leg, failure reason) of the first leg to call that cannot be called, or None."""
    for e in effects:
        if isinstance(e, t.Call):
            if e.join and not draft.call.get(f"{e.leg}_release"):
                return e.leg, "unavailable"     # the dialog ended before it was taken over
            if not e.join and _destination(draft.call, e, facts) is None:
                return e.leg, "not_registered"
    return None


def _about(leg: str, e: t.Effect) -> bool:
    """Whether an effect only concerns a leg that was never called."""
    if isinstance(e, (t.Call, t.Drop, t.Cancel)):
        return e.leg == leg
    return isinstance(e, t.Schedule) and e.leg == leg and e.kind == "no_answer"


def plan(record: Record, event: t.Event, facts: Facts, now: float) -> Plan | Needs | None:
    """The plan for `event` in the call `record` (with "callid"); None when it changes
    nothing; Needs when `facts` lack something to read first."""
    state = t.state_of(record)
    rules = rules_of(record)
    new, effects = t.step(state, event, rules)
    if new == state and not effects:
        return None
    draft = _Draft(record)
    for _ in range(CHAINED):
        needs = _needs(effects, draft, facts)
        if needs:
            return needs
        for e in effects:
            if isinstance(e, t.Call) and f"{e.leg}_ltag" not in draft.call:
                draft.put(_new_leg_fields(draft.call, e, facts.tags[e.leg]))
                if e.join:
                    other = facts.others[e.join.callid]
                    if other:
                        draft.put(taken_over_fields(e.leg, other, e.join.b_side))
        failed = _uncallable(draft, effects, facts)
        if failed is None:
            break
        leg, reason = failed
        new, more = t.step(new, t.Failed(leg, reason), rules)
        effects = [e for e in effects if not _about(leg, e)] + [e for e in more if not _about(leg, e)]
    draft.put({f"x_{k}": v for k, v in t.to_fields(new).items()})
    acts = _prepare(draft, new, effects, facts)
    return Plan(
        state=new, acts=acts, fields=draft.fields, others=draft.others,
        ends=any(isinstance(e, t.EndCall) for e in effects),
        due=[(now + e.seconds, e.leg, f"t:{e.kind}") for e in effects if isinstance(e, t.Schedule)],
        events=[_event_record(record, e, now) for e in effects if isinstance(e, t.Publish)])


def _prepare(draft: _Draft, state: t.State, effects: list[t.Effect],
             facts: Facts) -> list[tuple[t.Effect, dict[str, Any]]]:
    acts: list[tuple[t.Effect, dict[str, Any]]] = []
    linked: set[str] = set()
    for e in effects:
        args: dict[str, Any] = {}
        if isinstance(e, t.Link):
            linked.add(e.x)
        elif isinstance(e, t.Call) and e.join:
            args = _prepare_join(draft, e)
        elif isinstance(e, t.Call):
            ruri, sock = _destination(draft.call, e, facts) or ("", "")
            # A call-back shows A who waits; a phone's REFER transfer shows B the client, as the
            # client's own INVITE would (transfer_caller_id is for code transfers only).
            shown, pai, privacy = identity(draft.call, e.client, e.transferor,
                                           e.recall or state.mode == t.REFER)
            draft.put({f"{e.leg}_target": ruri, f"{e.leg}_socket": sock,
                       f"{e.leg}_from": f"{shown};tag={draft.call[f'{e.leg}_ltag']}"})
            transferor = Leg(draft.call, e.transferor).ext if e.transferor else ""
            args = {"pai": pai, "privacy": privacy,
                    "referred_by": f"<sip:{transferor}@{draft.call['tenant']}>" if transferor else ""}
        elif isinstance(e, (t.Bye, t.Notify)):
            args = {"cseq": draft.next_cseq(e.leg)}
        elif isinstance(e, t.Resume):
            if e.leg not in SIDES or not Leg(draft.call, e.leg).held or e.leg not in linked:
                continue
            args = {"cseq": draft.next_cseq(e.leg)}
            draft.put({f"{e.leg}_held": ""})
        elif isinstance(e, t.Release):
            callid = Leg(draft.call, e.leg).callid
            other = dict(facts.others[callid])
            if not other:
                continue                # that dialog has gone already
            phone = Leg(draft.call, e.leg).release
            other["callid"] = callid
            name = cseq_field(phone)
            n = int(other.get(name) or 0) + 1
            draft.other(callid)["set"][name] = str(n)
            args = {"other": other, "side": phone, "cseq": n}
        elif isinstance(e, t.Restore):
            draft.other(Leg(draft.call, e.leg).callid)["unset"].append("x_join")
            draft.put({f"{e.leg}_release": ""})
        acts.append((e, args))
    return acts


def _prepare_join(draft: _Draft, e: t.Call) -> dict[str, Any]:
    """B's end of the dialog an attended REFER names becomes leg e.leg: from now on its
    requests come to this call (x_join), and a re-INVITE moves B onto the client's media
    (rtpengine links parties of one call only)."""
    assert e.join is not None
    join = JoinRef(draft.call["callid"], e.leg, e.join.b_side)
    draft.other(e.join.callid)["set"]["x_join"] = str(join)
    client_sdp = Leg(draft.call, e.client).sdp
    if sdp_text.held(client_sdp):
        # The phone put the client on hold: B is offered, and later linked with, the client
        # as it will be once resumed (Resume).
        draft.put({f"{e.client}_sdp": sdp_text.resumed(client_sdp), f"{e.client}_held": "1"})
    return {"cseq": draft.next_cseq(e.leg)}


def _event_record(call: Record, publish: t.Publish, now: float) -> dict[str, str]:
    return {"type": "transfer", "kind": publish.kind, "callid": call["callid"],
            "tenant": call["tenant"], "at": f"{now:.3f}",
            **{k: str(v) for k, v in publish.details.items()}}
