"""What could not be done while a dependency was unreachable, done once it is back:

- the BYEs relayed without state while Redis was unreachable (dialogs.py): the rest of each
  call (its record, a leg a transfer had called, rtpengine's stored copy: store.py) is ended;
- what a leg the transfer engine called said while Redis was unreachable — its 2xx, its
  final failure, its BYE (legs.py) — handed to the engine, in that order, as if it came now;
- the media sessions rtpengine could not be told to delete while it was gone: deleted once
  it answers (else the restarted rtpengine would restore them from its store, for ever).

Kept in Kamailio's shared memory (htable `vpbx_backlog`, kamailio.cfg: keys `bye:CALL-ID`,
`answered|failed|hangup:LEG:CALL-ID` and `delete:CALL-ID`), so that the timer process does
them whichever process could not; a Kamailio restart forgets them (records are then left to
their TTL, sessions to rtpengine's timeouts). Only messages known to be in the proxy's own
calls are queued (a Route or Contact mark, a tm transaction's reply): no one else can fill it."""
import json
import logging

from vpbx.core import transfer
from vpbx.adapters.redis.resp import RespConnectionError
from vpbx.adapters.rtpengine.ngclient import NgError, NgUnreachable

log = logging.getLogger("vpbx.backlog")
TABLE = "vpbx_backlog"
BYE, DELETE = "bye", "delete"
ANSWERED, FAILED, HANGUP = "answered", "failed", "hangup"     # a leg's, to the engine
# A leg's answer before its BYE, and both before the BYE that ends the whole call (which
# then hangs up the leg that answered, instead of cancelling an INVITE tm has completed).
ORDER = (ANSWERED, FAILED, HANGUP, BYE, DELETE)
SAID = {ANSWERED: "answered", FAILED: "failed", HANGUP: "hung up"}


class Backlog:
    def __init__(self, sip, ng):
        self.sip, self.ng = sip, ng

    def bye_relayed(self, callid: str, side: str) -> None:
        """`side`'s BYE of the call was relayed without its record being read or ended."""
        self.sip.shared_set(TABLE, f"{BYE}:{callid}", side)

    def leg_said(self, callid: str, leg: str, kind: str, value: str = "") -> None:
        """The engine's leg `leg` answered (value: the 2xx's facts, JSON), failed (value: the
        reason) or hung up while Redis was unreachable."""
        log.info("vpbx: %s %s: %s while Redis is unreachable: handled once it is back",
                 callid, leg, SAID[kind])
        self.sip.shared_set(TABLE, f"{kind}:{leg}:{callid}", value)

    def media_lost(self, callid: str) -> None:
        """rtpengine could not be reached to delete the call's media."""
        log.warning("vpbx: %s: rtpengine unreachable: its media is deleted once it answers", callid)
        self._delete_later(callid)

    def delete_media(self, callid: str) -> None:
        """The message's dialog's media, deleted through Kamailio's rtpengine module (which
        tells no error from an unreachable rtpengine: any failure is tried again, once)."""
        if not self.sip.rtpengine_delete():
            self._delete_later(callid)

    def _delete_later(self, callid: str) -> None:
        self.sip.shared_set(TABLE, f"{DELETE}:{callid}", "")

    def run(self, engine) -> None:
        """In the timer process, with Redis reachable: each leg's answer, failure or BYE goes
        to the engine; each call whose BYE was relayed meanwhile is ended (transfer.RelayedBye:
        its record, its media, any leg the transfer engine had called); each lost delete is
        sent again. What still fails waits."""
        redis_up = rtpengine_up = True
        items = sorted(self.sip.shared_items(TABLE), key=lambda item: _rank(item[0]))
        for key, value in items:
            kind, _, callid = key.partition(":")
            try:
                if kind in (ANSWERED, FAILED, HANGUP) and redis_up:
                    leg, _, callid = callid.partition(":")
                    event, fields = _leg_event(kind, leg, value)
                    engine.handle(callid, event, fields=fields)
                    log.info("vpbx: %s %s: %s while Redis was unreachable: handled", callid, leg,
                             SAID[kind])
                elif kind == BYE and redis_up:
                    engine.handle(callid, transfer.RelayedBye(value))
                    log.info("vpbx: %s: ended after Redis came back (its BYE was relayed "
                             "meanwhile)", callid)
                elif kind == DELETE and rtpengine_up:
                    self.ng.command("delete", call_id=callid)
                    log.info("vpbx: %s: media deleted after rtpengine came back", callid)
                else:
                    continue
            except RespConnectionError:
                redis_up = False
                continue
            except NgUnreachable:
                rtpengine_up = False
                continue
            except NgError:
                pass                        # rtpengine had no such call (any more)
            except Exception:
                log.exception("vpbx: %s: the backlog's %s failed", callid, kind)
            self.sip.shared_remove(TABLE, key)


def _rank(key: str) -> int:
    kind = key.partition(":")[0]
    return ORDER.index(kind) if kind in ORDER else len(ORDER)


def _leg_event(kind: str, leg: str, value: str) -> tuple[transfer.Event, dict | None]:
    """-> (the engine's event, the leg's facts the message brought)."""
    if kind == ANSWERED:
        return transfer.Answered(leg), json.loads(value)
    if kind == FAILED:
        return transfer.Failed(leg, value), None
    return transfer.Hangup(leg), None
