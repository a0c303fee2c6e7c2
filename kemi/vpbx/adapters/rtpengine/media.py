"""Media of a call with a transfer: rtpengine re-wired with ng commands, never a re-INVITE.

The whole call stays one rtpengine call (the original dialog's Call-ID); each leg is a party
named by its tag. Linking two legs replays their original SDPs as an offer and an answer
("trust address", "port latching"), so existing parties keep their ports; every party stops
listening first, so nobody left out keeps hearing one way. Checked sequences and the reasons
for them: docs/architecture.md ("Media during a transfer").
"""
from vpbx.adapters.rtpengine.ngclient import NgError, NgUnreachable

LINK_FLAGS = ["trust-address", "port-latching", "strict-source"]      # see proxy.RTPE_FLAGS
SDP_REPLACE = ["origin", "session-connection"]
HOLD_REPEAT = 10000         # "forever": the hold media stops when the transfer moves on
# rtpengine lifts a code guard by itself this long after the * (should the proxy never re-arm).
GUARD_MAX_MS = 120_000


class Media:
    def __init__(self, ng, callid, lost=None):
        self.ng = ng
        self.callid = callid
        self.lost = lost        # Call-ID -> None: a delete rtpengine did not get (backlog.py)

    def _cmd(self, name, **args):
        return self.ng.command(name, call_id=self.callid, **args)

    def offer_new(self, tag, client_tag, client_sdp):
        """Create the party `tag` for a leg the proxy calls; -> the SDP for its INVITE. The
        client's media is offered to it (as the media the new leg will get); nobody hears
        the new leg until it is linked."""
        reply = self._cmd("offer", from_tag=client_tag, to_tag=tag, sdp=client_sdp,
                          flags=LINK_FLAGS, replace=SDP_REPLACE)
        self._cmd("block media", from_tag=tag)
        return reply["sdp"]

    def link(self, x, y, tags):
        """Parties x and y (tag, original SDP) hear each other and only each other; `tags`
        are all parties of the call. Media played to x or y stops. -> the SDP for x (its
        rtpengine ports, unchanged for an existing party)."""
        for tag, _ in (x, y):
            self.stop(tag)
        for tag in tags:
            self._cmd("unsubscribe", to_tag=tag)
        for tag, _ in (x, y):
            self._cmd("unblock media", from_tag=tag)
        self._cmd("offer", from_tag=x[0], to_tag=y[0], sdp=x[1], flags=LINK_FLAGS,
                  replace=SDP_REPLACE)
        return self._cmd("answer", from_tag=x[0], to_tag=y[0], sdp=y[1], flags=LINK_FLAGS,
                         replace=SDP_REPLACE)["sdp"]

    def play(self, tag, path, repeat=HOLD_REPEAT):
        """Play a file to the party (it hears it besides whatever it is linked to)."""
        self.stop(tag)
        self._cmd("play media", from_tag=tag, file=path, repeat_times=repeat)

    def stop(self, tag):
        try:
            self._cmd("stop media", from_tag=tag)
        except NgError as exc:
            if "not currently playing" not in str(exc).lower():
                raise

    def mute(self, tag):
        """Nobody hears the party's audio or DTMF (rtpengine still reports its digits)."""
        self._cmd("block media", from_tag=tag)
        self._cmd("block DTMF", from_tag=tag)

    def drop(self, tag):
        """The party has left: nobody hears it, nothing is played to it. Its rtpengine party
        stays until the call ends: deleting one party of a linked call can end the others'
        media, and unsubscribing a party that never answered breaks the client's next offer
        (rtpengine then answers "no such tag" for the new party)."""
        self.stop(tag)
        self.mute(tag)

    def guard(self, tag):
        """The party may type codes: from its next `*` on, its RFC 4733 events are dropped
        towards the others (and still reported) until guarded again after the code.
        rtpengine acts on the `*`'s first packet, so at most that packet gets through."""
        self._cmd("block DTMF", from_tag=tag, trigger="*", DTMF_security_trigger="drop",
                  DTMF_security_trigger_end="off", trigger_end_time=GUARD_MAX_MS)

    def unguard(self, tag):
        self._cmd("unblock DTMF", from_tag=tag)

    def end(self):
        """The call is over: the whole rtpengine call goes (a call-id-only delete, as the
        parties' tags no longer match the SIP dialogs' after a transfer). Unreachable, it is
        handed to `lost` to be deleted later."""
        try:
            self._cmd("delete")
        except NgUnreachable:
            if not self.lost:
                raise
            self.lost(self.callid)
        except NgError as exc:
            if "unknown call" not in str(exc).lower():
                raise
