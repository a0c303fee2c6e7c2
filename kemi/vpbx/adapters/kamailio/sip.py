"""The Kamailio adapter: the one module that uses KSR (Kamailio's KEMI functions). The routes,
the UAC and the guards get a `Sip` object and read and answer the message being processed
through it, so that their unit tests give them a fake instead (tests/fakes.py).
"""
from __future__ import annotations

import logging
import re

import KSR

from vpbx.core.routing import address

SEP = "\x1f"      # ASCII unit separator: appears in no SIP header and no SDP
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
_END_OF_HEADER = re.compile(r"\n\r?\n")      # an empty line, after CRLF or bare LF line ends


class Sip:
    """The SIP message Kamailio is processing, its transaction, and what Kamailio sends."""

    # ---- reading the message -------------------------------------------------------

    def pv(self, name: str) -> str:
        """A pseudo-variable as text ("" when unset)."""
        return KSR.pv.gete(name)

    def pv_int(self, name: str) -> int:
        return int(KSR.pv.get(name) or 0)

    def pvs(self, *names: str) -> list[str]:
        """Several pseudo-variables at once: Kamailio evaluates them in one call (each KSR
        call costs several microseconds, and an INVITE needs about twenty values)."""
        KSR.pvx.evalx("$var(vpbx)", SEP.join(names))
        values = KSR.pv.gete("$var(vpbx)").split(SEP)
        if len(values) != len(names):           # a separator inside a value: read one by one
            values = [self.pv(name) for name in names]
        return ["" if v == "<null>" else v for v in values]

    def set_pv(self, name: str, value: str) -> None:
        KSR.pv.sets(name, value)

    def is_method(self, name: str) -> bool:
        """name: INVITE, ACK, BYE, CANCEL, INFO, UPDATE, REGISTER, OPTIONS (KSR.is_<name>)."""
        return bool(getattr(KSR, f"is_{name}")())

    def header_list(self, name: str) -> list[str]:
        """The bodies of every header of that name, in order."""
        count = int(KSR.pv.get(f"$hdrc({name})") or 0)
        return [KSR.pv.gete(f"$(hdr({name})[{i}])") for i in range(count)]

    def header_values(self, name: str) -> str:
        """All values of a header in one string, as if the headers were one."""
        return ", ".join(self.header_list(name))

    def source(self) -> str:
        """proto:ip:port the message came from."""
        proto, ip, port = self.pvs("$pr", "$si", "$sp")
        return f"{proto}:{address(ip, port)}"

    def local_socket(self) -> str:
        """The socket the message arrived on, as t_uac_send wants it."""
        proto, ip, port = self.pvs("$pr", "$Ri", "$Rp")
        return f"{proto}:{address(ip, port)}"

    def sender_side(self) -> str:
        """Who sent this in-dialog request: the rr ftag parameter (append_fromtag) tells."""
        return "caller" if KSR.rr.is_direction("downstream") > 0 else "callee"

    def is_dtmf_info(self) -> bool:
        """An INFO carrying a key press (application/dtmf-relay or application/dtmf)."""
        return bool(KSR.is_INFO()) and self.pv("$cT").split(";")[0].strip().lower() in DTMF_INFO_TYPES

    def has_sdp(self) -> bool:
        return KSR.textops.has_body_type("application/sdp") > 0

    def has_totag(self) -> bool:
        return KSR.siputils.has_totag() > 0

    def unreadable(self) -> str:
        """Why the proxy cannot take the current message as text, "" when it can. Python gets
        Kamailio's values as str, so they must be UTF-8; a str with a NUL cannot be passed
        back to any KSR function (app_python3 then fails in the next call); and a datagram
        cut before the empty line ending the header fails tm ("EoH not parsed")."""
        try:
            text = KSR.pv.gete("$mb")
        except UnicodeDecodeError:
            return "not UTF-8"
        if "\x00" in text:
            return "NUL byte"
        return "" if _END_OF_HEADER.search(text) else "header not ended"

    def is_myself(self, uri: str) -> bool:
        return KSR.is_myself(uri) > 0

    def is_myself_ruri(self) -> bool:
        return KSR.is_myself_ruri() > 0

    # ---- checks of Kamailio's modules ----------------------------------------------

    def maxfwd(self, limit: int) -> int:
        return KSR.maxfwd.process_maxfwd(limit)

    def sanity_check(self, checks: int, uri_checks: int) -> bool:
        """False when the message is malformed (sanity has answered 400 itself)."""
        return KSR.sanity.sanity_check(checks, uri_checks) >= 0

    def loose_route(self) -> bool:
        return KSR.rr.loose_route() >= 0

    def record_route(self, params: str = "") -> None:
        """params: ';name=value...' added to the Record-Route URI (echoed in the Routes of
        the dialog's requests)."""
        if params:
            KSR.rr.record_route_params(params)
        else:
            KSR.rr.record_route()

    def route_param_is(self, name: str, value: str) -> bool:
        """After loose_route: whether the proxy's own Route carries ;name=value (value: only
        characters with no meaning in a regular expression)."""
        return KSR.rr.check_route_param(f"(^|;){name}={value}(;|$)") > 0

    def auth_check(self, realm: str, secret: str) -> int:
        """Digest check against an HA1 (pv_auth_check with the From/To user) -> its code."""
        return KSR.auth.pv_auth_check(realm, secret, 1, 1)

    def consume_credentials(self) -> None:
        KSR.auth.consume_credentials()

    def challenge(self, realm: str, stale: bool) -> None:
        """401 for REGISTER, 407 otherwise; qop=auth (+ stale=true)."""
        KSR.auth.auth_challenge(realm, 1 | (16 if stale else 0))

    # ---- answering, relaying ---------------------------------------------------------

    def reply(self, code: int, reason: str) -> None:
        """Statefully when a transaction exists, else statelessly."""
        KSR.sl.send_reply(code, reason)

    def sl_reply(self, code: int, reason: str) -> None:
        KSR.sl.sl_send_reply(code, reason)

    def t_reply(self, code: int, reason: str) -> None:
        KSR.tm.t_reply(code, reason)

    def drop(self) -> None:
        """The message being processed goes no further (a reply is not forwarded)."""
        KSR.set_drop()

    def send_data(self, uri: str, data: str) -> None:
        """Send `data` as it is from the proxy's socket to the host:port of `uri`."""
        KSR.corex.send_data(uri, data)

    def reply_error(self) -> None:
        KSR.sl.sl_reply_error()

    def newtran(self) -> int:
        """tm's transaction for the request: 1 made, 0 a retransmission (tm answered it), <0 error."""
        return KSR.tm.t_newtran()

    def check_trans(self) -> int:
        return KSR.tm.t_check_trans()

    def precheck_trans(self) -> bool:
        """A retransmission of a request being processed."""
        return KSR.tmx.t_precheck_trans() > 0

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    def on_reply(self, route: str) -> None:
        KSR.tm.t_on_reply(route)

    def on_failure(self, route: str) -> None:
        KSR.tm.t_on_failure(route)

    def add_reply_header(self, text: str) -> None:
        """text: 'Name: value\\r\\n', added to the next reply."""
        KSR.hdr.append_to_reply(text)

    def set_body(self, body: str, ctype: str) -> None:
        """Replace the body of the message being processed (a reply being relayed too)."""
        KSR.textops.set_body(body, ctype)

    def set_reply_body(self, body: str, ctype: str) -> None:
        KSR.textops.set_reply_body(body, ctype)

    def replace_header(self, name: str, value: str) -> None:
        KSR.hdr.remove(name)
        KSR.hdr.append(f"{name}: {value}\r\n")

    def rtpengine_manage(self, flags: str) -> bool:
        """Offer or answer the message's SDP to rtpengine -> False when rtpengine failed."""
        return KSR.rtpengine.rtpengine_manage(flags) > 0

    def rtpengine_delete(self) -> bool:
        """-> False when rtpengine failed (unreachable, or it had no such session)."""
        return KSR.rtpengine.rtpengine_delete("") > 0

    # ---- Kamailio's shared memory (htable), seen by every process -------------------

    def shared_set(self, table: str, key: str, value: str) -> None:
        KSR.htable.sht_sets(table, key, value)

    def shared_items(self, table: str) -> list[tuple[str, str]]:
        """A copy of the table's items (the iterator holds a lock of the table meanwhile)."""
        items: list[tuple[str, str]] = []
        if KSR.htable.sht_iterator_start("vpbx", table) < 0:
            return items
        try:
            while KSR.htable.sht_iterator_next("vpbx") > 0:
                items.append((KSR.pv.gete("$shtitkey(vpbx)"), KSR.pv.gete("$shtitval(vpbx)")))
        finally:
            KSR.htable.sht_iterator_end("vpbx")
        return items

    def shared_remove(self, table: str, key: str) -> None:
        KSR.htable.sht_rm(table, key)

    # ---- requests of the proxy's own (tm as the UAC) ---------------------------------

    def uac_send(self, method: str, ruri: str, nexthop: str, sock: str, headers: str,
                 body: str) -> int:
        return KSR.tm.t_uac_send(method, ruri, nexthop, sock, headers, body)

    def set_from_display(self, display: str) -> None:
        """In tm's local-request event: the From header's display name."""
        KSR.textops.subst_hf("From", f"/^[^<]*</{display} </", "f")

    # ---- Kamailio's log ----------------------------------------------------------------

    def log(self, level: int, text: str) -> None:
        line = text if text.endswith("\n") else text + "\n"
        if level >= logging.ERROR:
            KSR.err(line)
        elif level >= logging.WARNING:
            KSR.warn(line)
        elif level >= logging.INFO:
            KSR.info(line)
        else:
            KSR.dbg(line)


class KamailioLog(logging.Handler):
    """Python logging into Kamailio's log: the one way vpbx logs (logging.getLogger("vpbx..."))."""

    def emit(self, record: logging.LogRecord) -> None:
        Sip().log(record.levelno, self.format(record))


def install_log() -> None:
    """Send the vpbx loggers' lines to Kamailio's log (called once, when Kamailio loads vpbx)."""
    root = logging.getLogger("vpbx")
    if not any(isinstance(h, KamailioLog) for h in root.handlers):
        root.addHandler(KamailioLog())
    root.setLevel(logging.INFO)
