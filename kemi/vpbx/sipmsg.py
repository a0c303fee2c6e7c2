"""Reading and answering the SIP message Kamailio is processing (KSR helpers shared by the
routing glue), and Python logging into Kamailio's log."""
import logging
import re

import KSR


def pv(name):
    """A pseudo-variable as text ("" when unset)."""
    return KSR.pv.gete(name)


_SEP = "\x1f"      # ASCII unit separator: appears in no SIP header and no SDP


def pvs(*names):
    """Several pseudo-variables at once: Kamailio evaluates them in one call (each KSR call
    costs several microseconds, and an INVITE needs about twenty values)."""
    KSR.pvx.evalx("$var(vpbx)", _SEP.join(names))
    values = KSR.pv.gete("$var(vpbx)").split(_SEP)
    if len(values) != len(names):           # a separator inside a value: read one by one
        values = [pv(name) for name in names]
    return ["" if v == "<null>" else v for v in values]


def header_list(name):
    """The bodies of every header of that name, in order."""
    count = int(KSR.pv.get(f"$hdrc({name})") or 0)
    return [KSR.pv.gete(f"$(hdr({name})[{i}])") for i in range(count)]


def header_values(name):
    """All values of a header in one string, as if the headers were one."""
    return ", ".join(header_list(name))


def source():
    """proto:ip:port the message came from."""
    proto, ip, port = pvs("$pr", "$si", "$sp")
    return f"{proto}:{address(ip, port)}"


def local_socket():
    """The socket the message arrived on, as t_uac_send wants it."""
    proto, ip, port = pvs("$pr", "$Ri", "$Rp")
    return f"{proto}:{address(ip, port)}"


def address(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def sender_side():
    """Who sent this in-dialog request: the rr ftag parameter (append_fromtag) tells."""
    return "caller" if KSR.rr.is_direction("downstream") > 0 else "callee"


DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")


def is_dtmf_info():
    """An INFO carrying a key press (application/dtmf-relay or application/dtmf)."""
    return KSR.is_INFO() and pv("$cT").split(";")[0].strip().lower() in DTMF_INFO_TYPES


_END_OF_HEADER = re.compile(r"\n\r?\n")      # an empty line, after CRLF or bare LF line ends


def unreadable():
    """Why the proxy cannot take the current message as text, "" when it can. Python gets
    Kamailio's values as str, so they must be UTF-8; a str with a NUL cannot be passed back
    to any KSR function (app_python3 then fails in the next call); and a datagram cut before
    the empty line ending the header fails tm ("EoH not parsed")."""
    try:
        text = KSR.pv.gete("$mb")
    except UnicodeDecodeError:
        return "not UTF-8"
    if "\x00" in text:
        return "NUL byte"
    return "" if _END_OF_HEADER.search(text) else "header not ended"


def has_sdp():
    return KSR.textops.has_body_type("application/sdp") > 0


class KamailioLog(logging.Handler):
    """Python logging (the adapters' log lines) into Kamailio's log."""

    def emit(self, record):
        text = self.format(record) + "\n"
        if record.levelno >= logging.ERROR:
            KSR.err(text)
        elif record.levelno >= logging.WARNING:
            KSR.warn(text)
        else:
            KSR.info(text)


logging.getLogger("vpbx").addHandler(KamailioLog())
logging.getLogger("vpbx").setLevel(logging.INFO)


def reply(code, reason):
    """Statefully when a transaction exists, else statelessly."""
    KSR.sl.send_reply(code, reason)


def not_the_party():
    """Answer a request that claims to be a party's (by its From tag) but came from another
    address: 403, and it changes nothing."""
    KSR.info(f"vpbx: {pv('$rm')} {pv('$ci')} from {source()} refused: not the party's address\n")
    reply(403, "Forbidden - not sent by that party of the call")
