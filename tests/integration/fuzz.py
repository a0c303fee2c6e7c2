"""A seeded, reproducible SIP fuzzer that plays a stranger (sockets bound to 127.0.0.7).

What it sends, over UDP and TCP to the SIP port:
- hand-written malformed or unusual messages in the categories of RFC 4475 (SIP torture
  tests): torture();
- random mutations (byte flips, insertions, deletions, header duplication, removal and value
  swaps, folding, odd line ends, NULs, non-UTF-8, huge values) of valid INVITE, INFO
  (application/dtmf-relay), REFER, NOTIFY, REGISTER, OPTIONS, BYE messages, the in-dialog
  ones with the Call-ID, tags and Route of a real call: TEMPLATES, mutate();
and over UDP to the SIP port and to the DTMF-report port, mutations of rtpengine's DTMF-report
JSON: dtmf_report().

The Request-URI and Route of in-dialog messages are never mutated (only whole Route headers
dropped or repeated): they decide where the proxy relays a message, and a mutated host or port
would send it to another program on this machine or to DNS.
"""
import json
import random
import re
import selectors
import socket
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import cast

STRANGER = "127.0.0.7"


@dataclass
class Target:
    proxy_port: int
    dtmf_port: int
    tenant: str
    call: dict          # the real call: callid, caller/callee uri, tag, contact; route


@dataclass
class Msg:
    """A message as lines (without the empty line ending the header) and a body; `fixed`:
    indices of lines mutations must keep (in-dialog Request-URI and Route)."""
    lines: list
    body: bytes = b""
    fixed: set = field(default_factory=set)

    def to_bytes(self):
        return b"\r\n".join(self.lines) + b"\r\n\r\n" + self.body


# ---- valid messages ----------------------------------------------------------

def _token(rng, n=10):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


SDP = ("v=0\r\no=- 7 7 IN IP4 127.0.0.7\r\ns=-\r\nc=IN IP4 127.0.0.7\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
       "a=sendrecv\r\n")


def _build(start, head, body="", fixed=()):
    body_b = body.encode()
    lines = [start.encode(), *(h.encode() for h in head), f"Content-Length: {len(body_b)}".encode()]
    return Msg(lines, body_b, set(fixed))


def _out_of_dialog(rng, t, via, method, ruri, from_uri, to_uri, extra=(), body=""):
    head = [f"Via: {via}", "Max-Forwards: 70", f"From: <{from_uri}>;tag={_token(rng)}",
            f"To: <{to_uri}>", f"Call-ID: {_token(rng, 16)}@{STRANGER}",
            f"CSeq: {rng.randint(1, 9999)} {method}", *extra]
    return _build(f"{method} {ruri} SIP/2.0", head, body)


def _in_dialog(rng, t, via, method, extra=(), body=""):
    """A request in the real call, as its caller or its callee would send it."""
    c = t.call
    side, other = rng.choice((("caller", "callee"), ("callee", "caller")))
    head = [f"Route: {r}" for r in c["route"]]
    head += [f"Via: {via}", "Max-Forwards: 70", f"From: <{c[side + '_uri']}>;tag={c[side + '_tag']}",
             f"To: <{c[other + '_uri']}>;tag={c[other + '_tag']}", f"Call-ID: {c['callid']}",
             f"CSeq: {rng.randint(10, 99999)} {method}", *extra]
    return _build(f"{method} {c[other + '_contact']} SIP/2.0", head, body,
                  fixed=range(1 + len(c["route"])))


def _invite(rng, t, via, local):
    caller, callee, extra = rng.choice((
        ("202", "201", []),                     # relayed to the call's callee, who is busy
        ("200", "201", [f'Proxy-Authorization: Digest username="200", realm="{t.tenant}", '
                        f'nonce="{_token(rng, 24)}", uri="sip:201@{t.tenant}", '
                        f'response="{_token(rng, 32)}"']),
        ("201", "100", []), ("999", "201", []), ("202", "+4930123456", [])))
    return _out_of_dialog(rng, t, via, "INVITE", f"sip:{callee}@{t.tenant}",
                          f"sip:{caller}@{t.tenant}", f"sip:{callee}@{t.tenant}",
                          [f"Contact: <sip:{caller}@{local}>", "Content-Type: application/sdp", *extra],
                          SDP)


def _register(rng, t, via, local):
    user, domain = rng.choice((("200", t.tenant), ("999", t.tenant), ("200", "nowhere.test")))
    return _out_of_dialog(rng, t, via, "REGISTER", f"sip:{domain}", f"sip:{user}@{domain}",
                          f"sip:{user}@{domain}",
                          [f"Contact: <sip:{user}@{local}>;expires={rng.choice((0, 60, 300, 3600))}",
                           "Expires: 300"])


def _options(rng, t, via, local):
    return _out_of_dialog(rng, t, via, "OPTIONS", f"sip:127.0.0.1:{t.proxy_port}",
                          f"sip:fuzz@{STRANGER}", f"sip:127.0.0.1:{t.proxy_port}")


def _info(rng, t, via, local):
    key = rng.choice("0123456789*#") if rng.random() < 0.8 else rng.choice(("10", "11", "16", "A"))
    return _in_dialog(rng, t, via, "INFO", ["Content-Type: application/dtmf-relay"],
                      f"Signal={key}\r\nDuration={rng.choice((100, 160, 250))}\r\n")


def _refer(rng, t, via, local):
    c = t.call
    target = rng.choice((
        f"<sip:100@{t.tenant}>", "<tel:100>", f"<sip:202@127.0.0.1:{t.proxy_port}>",
        f"<sip:201@{t.tenant}?Replaces={c['callid']}%3Bto-tag%3D{c['callee_tag']}"
        f"%3Bfrom-tag%3D{c['caller_tag']}>"))
    return _in_dialog(rng, t, via, "REFER", [f"Refer-To: {target}",
                                             f"Referred-By: <{c['caller_uri']}>",
                                             f"Contact: <sip:fuzz@{local}>"])


def _notify(rng, t, via, local):
    return _in_dialog(rng, t, via, "NOTIFY",
                      ["Event: refer", "Subscription-State: active;expires=60",
                       "Content-Type: message/sipfrag;version=2.0"],
                      rng.choice(("SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n")))


def _reinvite(rng, t, via, local):
    return _in_dialog(rng, t, via, "INVITE", [f"Contact: <sip:fuzz@{local}>",
                                              "Content-Type: application/sdp"], SDP)


def _bye(rng, t, via, local):
    return _in_dialog(rng, t, via, "BYE")


# name -> (builder, weight)
TEMPLATES = {
    "INVITE": (_invite, 5), "REGISTER": (_register, 4), "OPTIONS": (_options, 1),
    "INFO": (_info, 5), "REFER": (_refer, 3), "NOTIFY": (_notify, 3), "re-INVITE": (_reinvite, 3),
    "BYE": (_bye, 1),
}


# ---- mutations ---------------------------------------------------------------

ODD_BYTES = [b"\x00", b"\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\r", b"\n", b"\r\n",
             b"\r\n ", b"\t", b" ", b":", b";", b",", b"<", b">", b'"', b"\\", b"%", b"%00",
             b"%zz", b"@", b"=", b"?", b"&", b"\x7f", b"\xef\xbb\xbf"]
ODD_VALUES = [b"", b" ", b"-1", b"0", b"4294967296", b"99999999999999999999999", b"1e9",
              b"abc", b"\x00", b'"unterminated', b"<sip:@>", b"<>", b"sip:", b"<sip:%00@\x00>",
              b"tel:+", b"<sip:a@b;lr;;;=>", b";tag=", b";;;", b",,,", b"*",
              b"SIP/2.0/UDP", b"Digest", b"\xff\xfe\xfd", b"A" * 300, b"9" * 40]
METHODS = [b"INVITE", b"ACK", b"BYE", b"CANCEL", b"OPTIONS", b"REGISTER", b"INFO", b"REFER",
           b"NOTIFY", b"SUBSCRIBE", b"PRACK", b"UPDATE", b"MESSAGE", b"PUBLISH", b"invite",
           b"NEWMETHOD", b"I\x00NVITE", b"", b"INV ITE", b"\xc3\xa9"]
VERSIONS = [b"SIP/2.0", b"SIP/7.0", b"SIP/2.00", b"sip/2.0", b"SIP/2", b"HTTP/1.1", b"SIP/-1.0", b""]


def _free_lines(msg):
    return [i for i in range(1, len(msg.lines)) if i not in msg.fixed]


def _in_line(rng, msg, edit):
    """Apply edit(bytes) -> bytes to one mutable line, or to the body."""
    free = _free_lines(msg)
    if msg.body and (not free or rng.random() < 0.25):
        msg.body = edit(msg.body)
    elif free:
        i = rng.choice(free)
        msg.lines[i] = edit(msg.lines[i])


def _flip(rng, msg):
    def edit(data):
        if not data:
            return data
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    _in_line(rng, msg, edit)


def _insert(rng, msg):
    def edit(data):
        at = rng.randint(0, len(data))
        if rng.random() < 0.1:
            extra = rng.choice((b"A", b"9", b"%41", b";x=y")) * rng.choice((100, 1000, 10000, 60000))
        elif rng.random() < 0.5:
            extra = rng.choice(ODD_BYTES) * rng.randint(1, 3)
        else:
            extra = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        return data[:at] + extra + data[at:]
    _in_line(rng, msg, edit)


def _delete(rng, msg):
    def edit(data):
        if not data:
            return data
        at = rng.randrange(len(data))
        return data[:at] + data[at + rng.randint(1, 16):]
    _in_line(rng, msg, edit)


def _duplicate_header(rng, msg):
    i = rng.randrange(1, len(msg.lines))
    copies = rng.choice((1, 1, 2, 10, 100))
    msg.lines[i + 1:i + 1] = [msg.lines[i]] * copies
    msg.fixed = {j + copies if j > i else j for j in msg.fixed}


def _remove_header(rng, msg):
    """Any header but the fixed Request-URI (a Route may go: the request then is no
    longer loose-routed, but answered here)."""
    i = rng.randrange(1, len(msg.lines))
    del msg.lines[i]
    msg.fixed = {j - 1 if j > i else j for j in msg.fixed if j != i}


def _name_value(line):
    name, sep, value = line.partition(b":")
    return (name, value.strip()) if sep else (None, None)


def _swap_values(rng, msg):
    free = [i for i in _free_lines(msg) if _name_value(msg.lines[i])[0] is not None]
    if len(free) < 2:
        return
    i, j = rng.sample(free, 2)
    (ni, vi), (nj, vj) = _name_value(msg.lines[i]), _name_value(msg.lines[j])
    msg.lines[i], msg.lines[j] = ni + b": " + vj, nj + b": " + vi


def _odd_value(rng, msg):
    free = [i for i in _free_lines(msg) if _name_value(msg.lines[i])[0] is not None]
    if free:
        i = rng.choice(free)
        msg.lines[i] = _name_value(msg.lines[i])[0] + b": " + rng.choice(ODD_VALUES)


def _fold(rng, msg):
    """Line folding (obsolete but valid LWS): a header value continued on the next line."""
    def edit(data):
        spots = [m.start() for m in re.finditer(rb"[ :;,]", data)]
        if not spots:
            return data
        at = rng.choice(spots) + 1
        return data[:at] + rng.choice((b"\r\n ", b"\r\n\t", b"\r\n", b"\n ")) + data[at:]
    _in_line(rng, msg, edit)


def _content_length(rng, msg):
    for i, line in enumerate(msg.lines):
        if line.lower().startswith(b"content-length"):
            value = rng.choice((b"-1", b"0", b"1", str(len(msg.body) + rng.randint(1, 100)).encode(),
                                b"4294967297", b"99999999999999", b"abc", b" 1 2", b""))
            msg.lines[i] = b"Content-Length: " + value
            return


def _start_line(rng, msg):
    """Method or version of the request line (never its URI)."""
    method, sep, rest = msg.lines[0].partition(b" ")
    uri, _, version = rest.rpartition(b" ")
    if rng.random() < 0.6:
        method = rng.choice(METHODS)
    else:
        version = rng.choice(VERSIONS)
    msg.lines[0] = method + b" " + uri + b" " + version


def _cseq(rng, msg):
    for i, line in enumerate(msg.lines):
        if line.lower().startswith(b"cseq:"):
            number, _, method = _name_value(line)[1].partition(b" ")
            if rng.random() < 0.5:
                number = rng.choice((b"0", b"-1", b"4294967296", b"2147483648", b"x", b""))
            else:
                method = rng.choice(METHODS)
            msg.lines[i] = b"CSeq: " + number + b" " + method
            return


def _line_ends(rng, data):
    """Bare LF (or CR) line ends instead of CRLF, in the whole header or in one place."""
    head, sep, body = data.partition(b"\r\n\r\n")
    end = rng.choice((b"\n", b"\r", b"\n\r"))
    if rng.random() < 0.5:
        return head.replace(b"\r\n", end) + end + end + body
    spots = [m.start() for m in re.finditer(b"\r\n", head)]
    at = rng.choice(spots) if spots else 0
    return head[:at] + end + head[at + 2:] + sep + body


MUTATIONS = [(_flip, 5), (_insert, 4), (_delete, 3), (_duplicate_header, 2), (_remove_header, 3),
             (_swap_values, 2), (_odd_value, 3), (_fold, 2), (_content_length, 2), (_start_line, 2),
             (_cseq, 2)]


def mutate(rng, msg):
    """1 to 4 random mutations -> the message as bytes (a truncation now and then)."""
    funcs, weights = zip(*MUTATIONS)
    for mutation in rng.choices(funcs, weights, k=rng.choice((1, 1, 2, 3, 4))):
        mutation(rng, msg)
    data = msg.to_bytes()
    if rng.random() < 0.05:
        data = _line_ends(rng, data)
    if rng.random() < 0.05:         # truncated (but not within the fixed lines)
        fixed_end = sum(len(msg.lines[i]) + 2 for i in range(max(msg.fixed, default=0) + 1))
        data = data[:rng.randint(min(fixed_end, len(data)), len(data))]
    return data


# ---- RFC 4475 categories, messages of our own ---------------------------------

def torture(rng, t, via, local):
    """(RFC 4475 section and what, message) pairs: valid but unusual messages (3.1.1), invalid
    ones (3.1.2), transaction and application layer oddities (3.2, 3.3), RFC 2543 syntax
    (3.4), and a few of our own (NULs, non-UTF-8, huge messages, keep-alives)."""
    ten, proxy = t.tenant, f"127.0.0.1:{t.proxy_port}"
    cid = lambda: f"{_token(rng, 16)}@{STRANGER}"     # noqa: E731
    tag = lambda: _token(rng, 8)                      # noqa: E731

    def req(method, ruri, *headers, body="", length=None, version="SIP/2.0"):
        head = list(headers)
        if not any(h.lower().startswith(("v:", "via")) for h in head):
            head.insert(0, f"Via: {via}")
        defaults = {"max-forwards": "Max-Forwards: 70",
                    "from": f"From: <sip:202@{ten}>;tag={tag()}", "to": f"To: <sip:201@{ten}>",
                    "call-id": f"Call-ID: {cid()}", "cseq": f"CSeq: 1 {method}"}
        names = {h.split(":")[0].strip().lower() for h in head}
        compact = {"f": "from", "t": "to", "i": "call-id"}
        names |= {compact[n] for n in names if n in compact}
        head += [v for k, v in defaults.items() if k not in names and f"-{k}" not in names]
        head = [h for h in head if not h.startswith("-")]
        if length is None:
            length = len(body.encode("latin-1"))
        text = f"{method} {ruri} {version}\r\n" + "".join(h + "\r\n" for h in head)
        if length != "":
            text += f"Content-Length: {length}\r\n"
        return (text + "\r\n" + body).encode("latin-1")

    inv = f"sip:201@{ten}"
    sdp_ct = "Content-Type: application/sdp"
    long = "x" * 2000
    items = [
        ("3.1.1.1 tortuous INVITE: compact forms, odd case, folding, LWS",
         req("INVITE", inv, f"v:  SIP/2.0/UDP\t{local}\r\n ;branch=z9hG4bK{tag()} ;rport",
             f"f: \"J Rosenberg \\\\\\\"\"  <sip:202@{ten}>\r\n\t;tag={tag()}",
             f"t: <sip:201@{ten}>", f"i: {cid()}", "cSeQ:\t 8\r\n   INVITE", "mAX-fORWARDS: 0068",
             "NewFangledHeader:   newfangled value\r\n continued newfangled value",
             "UnknownHeaderWithUnusualValue: ;;,,;;,;", "c: application/sdp", body=SDP)),
        ("3.1.1.2 wide range of valid characters",
         req("!interesting-Method0123456789_*+`.%indeed'~",
             "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
             f"weird!*pas$wo~d_too.(doesn't-it)@{ten}",
             f"To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:201@{ten}>",
             f"From: token1~` token2'+_ token3*%!.- <sip:202@{ten}>;"
             f"fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\";tag={tag()}",
             "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
             "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~",
             "extensionHeader-!.%*+_`'~: \xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb")),
        ("3.1.1.3 %-escaping in URIs", req("INVITE", f"sip:%32%30%31@{ten}", f"To: <sip:%32%30%31@{ten}>",
                                          sdp_ct, body=SDP)),
        ("3.1.1.4 escaped NUL in URIs", req("REGISTER", f"sip:{ten}", f"To: <sip:null-%00-null@{ten}>",
                                           f"From: <sip:null-%00-null@{ten}>;tag={tag()}",
                                           f"Contact: <sip:%00@{local}>")),
        ("3.1.1.5 % that is no escape", req("RE%47IST%45R", f"sip:{ten}",
                                            "To: \"%Z%45\" <sip:resource@{ten}>",
                                            f"Contact: <sip:alias@{local}>")),
        ("3.1.1.6 no LWS between display name and <",
         req("OPTIONS", f"sip:{proxy}", f"From: caller<sip:202@{ten}>;tag={tag()}",
             f"To: \"x\"<sip:{proxy}>")),
        ("3.1.1.7 long values in headers",
         req("INVITE", inv, f"To: \"I have a user name of {long} proportion\" <sip:201@{ten}>",
             f"From: <sip:202@{ten}>;tag={'t' * 2000}", f"Call-ID: {'c' * 3000}@{STRANGER}",
             *[f"Via: SIP/2.0/UDP {STRANGER}:{5000 + i};branch=z9hG4bK{tag()}" for i in range(40)],
             f"X-Long: {long * 10}", sdp_ct, body=SDP)),
        ("3.1.1.8 extra octets after the body in a datagram",
         req("REGISTER", f"sip:{ten}", f"To: <sip:200@{ten}>", f"Contact: <sip:200@{local}>")
         + b"INVITE sip:201@" + ten.encode() + b" SIP/2.0\r\n"),
        ("3.1.1.9 semicolons in the URI user part",
         req("OPTIONS", f"sip:user;par=u%40example.net@{ten}", f"To: <sip:user;par=u%40example.net@{ten}>")),
        ("3.1.1.10 unknown transports in Via",
         req("OPTIONS", f"sip:{proxy}", f"Via: SIP/2.0/UDP {local};branch=z9hG4bK{tag()}",
             f"Via: SIP/2.0/SCTP {STRANGER}:5061;branch=z9hG4bK{tag()}",
             f"Via: SIP/2.0/NEWTRANSPORT {STRANGER};branch=z9hG4bK{tag()}")),
        ("3.1.1.11 multipart body",
         req("INVITE", inv, "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655",
             "MIME-Version: 1.0",
             body=f"--7a9cbec02ceef655\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n"
                  "--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n\r\nhi\r\n--7a9cbec02ceef655--\r\n")),
        ("3.1.1.12 unsolicited reply, unusual reason phrase",
         f"SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe \r\nVia: {via}\r\nFrom: <sip:a@{ten}>;tag=1\r\n"
         f"To: <sip:b@{ten}>;tag=2\r\nCall-ID: {cid()}\r\nCSeq: 1 INVITE\r\n"
         "Content-Length: 0\r\n\r\n".encode("latin-1")),
        ("3.1.1.13 unsolicited reply, empty reason phrase",
         f"SIP/2.0 100 \r\nVia: {via}\r\nFrom: <sip:a@{ten}>;tag=1\r\nTo: <sip:b@{ten}>\r\n"
         f"Call-ID: {cid()}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".encode()),
        ("3.1.2.1 extraneous header field separators",
         req("INVITE", inv, f"To:: <sip:201@{ten}>", f"From: <sip:202@{ten}>;;,;tag={tag()}",
             "Max-Forwards: 70,,", sdp_ct, body=SDP)),
        ("3.1.2.2 Content-Length larger than the message", req("INVITE", inv, sdp_ct, body=SDP, length=9999)),
        ("3.1.2.3 negative Content-Length", req("INVITE", inv, sdp_ct, body=SDP, length=-999)),
        ("3.1.2.4 request scalar fields with overlarge values",
         req("REGISTER", f"sip:{ten}", f"To: <sip:200@{ten}>", "CSeq: 36893488147419103232 REGISTER",
             "Max-Forwards: 300", "Expires: 1" + "0" * 30,
             f"Contact: <sip:200@{local}>;expires=280297596632815")),
        ("3.1.2.5 unsolicited reply, overlarge scalar fields",
         f"SIP/2.0 503 Service Unavailable\r\nVia: {via}\r\nFrom: <sip:a@{ten}>;tag=1\r\n"
         f"To: <sip:b@{ten}>;tag=2\r\nCall-ID: {cid()}\r\nCSeq: 1 OPTIONS\r\n"
         "Retry-After: 18446744073709551616\r\nWarning: 1812 overflow \"Warning\"\r\n"
         "Content-Length: 0\r\n\r\n".encode()),
        ("3.1.2.6 unterminated quoted display name",
         req("INVITE", inv, f"From: \"Bob <sip:202@{ten}>;tag={tag()}", sdp_ct, body=SDP)),
        ("3.1.2.7 <> around the Request-URI", req("INVITE", f"<{inv}>", sdp_ct, body=SDP)),
        ("3.1.2.8 LWS inside the Request-URI", req("INVITE", f"sip:201@{ten}; lr", sdp_ct, body=SDP)),
        ("3.1.2.9 multiple SP between request-line elements",
         req("OPTIONS", f"sip:{proxy}  ", version=" SIP/2.0")),
        ("3.1.2.10 SP at the end of the request line", req("OPTIONS", f"sip:{proxy}", version="SIP/2.0 ")),
        ("3.1.2.11 escaped headers in the Request-URI",
         req("INVITE", f"sip:201@{ten}?Route=%3Csip:{STRANGER}%3E&Max-Forwards=0", sdp_ct, body=SDP)),
        ("3.1.2.12 invalid time zone in Date",
         req("OPTIONS", f"sip:{proxy}", "Date: Fri, 01 Jan 2010 16:00:00 EST")),
        ("3.1.2.13 name-addr without <> around a URI with parameters",
         req("INVITE", inv, f"From: \"x\" sip:202@{ten};tag={tag()}", f"Contact: sip:202@{local};x=y",
             sdp_ct, body=SDP)),
        ("3.1.2.14 spaces within an addr-spec",
         req("INVITE", inv, f"To: sip:201 @ {ten}", f"From: sip:202@{ten} ;tag={tag()}", sdp_ct, body=SDP)),
        ("3.1.2.15 non-token characters in the display name",
         req("INVITE", inv, f"From: Bell, Alexander <sip:202@{ten}>;tag={tag()}", sdp_ct, body=SDP)),
        ("3.1.2.16 unknown protocol version", req("OPTIONS", f"sip:{proxy}", version="SIP/7.0")),
        ("3.1.2.17 start line and CSeq method mismatch",
         req("INVITE", inv, "CSeq: 1 OPTIONS", sdp_ct, body=SDP)),
        ("3.1.2.18 unknown method, CSeq mismatch", req("NEWMETHOD", inv, "CSeq: 1 INVITE")),
        ("3.1.2.19 unsolicited reply, overlarge status code",
         f"SIP/2.0 4294967301 better not break the receiver\r\nVia: {via}\r\nFrom: <sip:a@{ten}>;tag=1\r\n"
         f"To: <sip:b@{ten}>;tag=2\r\nCall-ID: {cid()}\r\nCSeq: 1 INVITE\r\n"
         "Content-Length: 0\r\n\r\n".encode()),
        ("3.2 no branch (RFC 2543 transaction)",
         req("INVITE", inv, f"Via: SIP/2.0/UDP {local}", sdp_ct, body=SDP)),
        ("3.3.1 missing Call-ID", req("OPTIONS", f"sip:{proxy}", "-call-id")),
        ("3.3.1 missing From", req("INVITE", inv, "-from", sdp_ct, body=SDP)),
        ("3.3.1 missing To", req("REGISTER", f"sip:{ten}", "-to", f"Contact: <sip:200@{local}>")),
        ("3.3.1 missing CSeq", req("INVITE", inv, "-cseq", sdp_ct, body=SDP)),
        ("3.3.1 missing Max-Forwards", req("OPTIONS", f"sip:{proxy}", "-max-forwards")),
        ("3.3.1 missing Via", (lambda m: re.sub(rb"Via:[^\r]*\r\n", b"", m, count=1))(
            req("OPTIONS", f"sip:{proxy}"))),
        ("3.3.2 unknown Request-URI scheme", req("OPTIONS", "soap.beep://192.0.2.103:3002")),
        ("3.3.3 known but atypical Request-URI schemes",
         req("INVITE", "tel:+1-201-555-0123", sdp_ct, body=SDP)),
        ("3.3.3 sips Request-URI", req("INVITE", f"sips:201@{ten}", sdp_ct, body=SDP)),
        ("3.3.4 unknown URI schemes in headers",
         req("INVITE", inv, "From: <im:202@example.com>;tag=x", "To: <xmpp:201@example.com>",
             "Contact: <name:John_Smith>", sdp_ct, body=SDP)),
        ("3.3.5 Proxy-Require and Require", req("OPTIONS", f"sip:{proxy}", "Proxy-Require: foo",
                                                "Require: nothingSupportsThis, nothingSupportsThisEither")),
        ("3.3.6 unknown Content-Type", req("INVITE", inv, "Content-Type: application/unknownformat",
                                           body="<audio> <pcmu port=\"443\"/> </audio>")),
        ("3.3.7 unknown authorization scheme",
         req("REGISTER", f"sip:{ten}", f"To: <sip:200@{ten}>", f"Contact: <sip:200@{local}>",
             "Authorization: NoOneKnowsThisScheme opaque-data=here")),
        ("3.3.7 Digest without its fields",
         req("REGISTER", f"sip:{ten}", f"To: <sip:200@{ten}>", f"Contact: <sip:200@{local}>",
             'Authorization: Digest username="200", realm=, nonce="', )),
        ("3.3.8 multiple values in single-value headers",
         req("INVITE", inv, f"Call-ID: {cid()}", f"Call-ID: {cid()}", f"To: <sip:201@{ten}>",
             f"To: <sip:202@{ten}>", f"From: <sip:202@{ten}>;tag=1", f"From: <sip:201@{ten}>;tag=2",
             "CSeq: 1 INVITE", "CSeq: 2 INVITE", "Max-Forwards: 70", "Max-Forwards: 5", sdp_ct, body=SDP)),
        ("3.3.9 multiple Content-Length values",
         req("INVITE", inv, sdp_ct, f"Content-Length: {len(SDP)}, 3", body=SDP, length=len(SDP))),
        ("3.3.11 Max-Forwards of zero", req("OPTIONS", f"sip:{proxy}", "Max-Forwards: 0")),
        ("3.3.12 REGISTER with a Contact header parameter",
         req("REGISTER", f"sip:{ten}", f"To: <sip:200@{ten}>",
             f"Contact: sip:200@{local};expires=280297596632815")),
        ("3.3.13 REGISTER with a URL parameter",
         req("REGISTER", f"sip:{ten}", f"To: <sip:999@{ten}>", f"Contact: <sip:999@{local};transport=sctp>")),
        ("3.3.14 REGISTER with a URL escaped header",
         req("REGISTER", f"sip:{ten}", f"To: <sip:999@{ten}>",
             f"Contact: <sip:999@{local}?Route=%3Csip:example.com%3E>")),
        ("3.3.15 REGISTER with two Contacts and *",
         req("REGISTER", f"sip:{ten}", f"To: <sip:999@{ten}>", "Contact: *", f"Contact: <sip:999@{local}>")),
        ("3.3.16 CANCEL with no matching transaction", req("CANCEL", inv, "CSeq: 1 CANCEL")),
        ("3.3.17 unacceptable Accept", req("OPTIONS", f"sip:{proxy}", "Accept: text/nobodyKnowsThis")),
        ("3.3.18 INVITE with a non-SDP body", req("INVITE", inv, "Content-Type: application/json",
                                                  body='{"sdp": false}')),
        ("3.3.19 bad Content-Language", req("INVITE", inv, "Content-Language: \xff\x01, en-US-",
                                            sdp_ct, body=SDP)),
        ("3.4 RFC 2543 syntax", req("INVITE", inv, f"Via: SIP/2.0/UDP {local}", f"From: sip:202@{ten}",
                                     f"To: sip:201@{ten}", "CSeq: 1 INVITE", "Content-Type: application/sdp",
                                     body=SDP)),
        ("own: NUL bytes in headers",
         req("INVITE", inv, f"From: <sip:202@{ten}>;tag=\x00\x00", "X-Null: a\x00b", sdp_ct, body=SDP)),
        ("own: non-UTF-8 in the display name and Call-ID",
         req("INVITE", inv, f"From: \"\xff\xfe\xc3\x28\" <sip:202@{ten}>;tag={tag()}",
             f"Call-ID: \xed\xa0\x80{cid()}", sdp_ct, body=SDP)),
        ("own: huge message (60 kB)", req("OPTIONS", f"sip:{proxy}", f"X-Huge: {'h' * 60000}")),
        ("own: 1000 headers", req("OPTIONS", f"sip:{proxy}", *[f"X-H{i}: {i}" for i in range(1000)])),
        ("own: request line only", b"OPTIONS sip:" + proxy.encode() + b" SIP/2.0\r\n\r\n"),
        ("own: CRLF keep-alive", b"\r\n\r\n"),
        ("own: empty datagram", b""),
        ("own: one byte", b"I"),
        ("own: binary noise", bytes(rng.randrange(256) for _ in range(rng.randint(1, 1400)))),
        ("own: no Content-Length", req("INVITE", inv, sdp_ct, body=SDP, length="")),
        ("own: SDP with garbage",
         req("INVITE", inv, sdp_ct,
             body="v=0\r\nm=audio 99999999 RTP/AVP 0\r\nc=IN IP4 999.1.1.1\r\nm=\r\na=\r\n")),
        ("own: DTMF INFO out of a dialog",
         req("INFO", inv, "Content-Type: application/dtmf-relay", body="Signal=*\r\nDuration=160\r\n")),
        ("own: in-dialog request for an unknown call",
         req("INFO", t.call["callee_contact"], f"Route: <sip:{proxy};lr>",
             f"To: <sip:201@{ten}>;tag={tag()}", "Content-Type: application/dtmf-relay",
             body="Signal=1\r\n")),
    ]
    return items


# ---- DTMF reports (rtpengine's --dtmf-log-dest JSON) ------------------------------

ODD_JSON = [None, True, 0, -1, 10, 16, 2 ** 64, 1e308, -0.0, "", "10", "*", "x" * 5000, [], [10],
            {}, {"a": 1}, "\u0000", "\ud800"]


def dtmf_report(rng, t):
    """A DTMF report as rtpengine sends it, mutated: values of other types or out of range,
    keys missing or added, nesting, or bytes of the JSON text mutated."""
    c = t.call
    report = {"callid": c["callid"], "source_tag": rng.choice((c["caller_tag"], c["callee_tag"])),
              "tags": [c["caller_tag"], c["callee_tag"]], "type": "DTMF",
              "event": rng.choice((10, 11, 1, 0, 5)), "duration": rng.choice((160, 800, 1600))}
    roll = rng.random()
    if roll < 0.45:
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(list(report) or ["callid"])
            action = rng.random()
            if action < 0.6:
                report[key] = rng.choice(ODD_JSON)
            elif action < 0.8:
                report.pop(key, None)
            else:
                report[_token(rng, 4)] = rng.choice(ODD_JSON)
        return json.dumps(report).encode()
    if roll < 0.55:
        depth = rng.choice((10, 1000, 20000))
        return rng.choice((b"[", b'{"a":')) * depth
    if roll < 0.65:
        return json.dumps(rng.choice(([report], "DTMF", 10, None, [[report]]))).encode()
    text = bytearray(json.dumps(report).encode())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text))
        op = rng.random()
        if op < 0.4:
            text[at] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            text[at:at] = rng.choice(ODD_BYTES + [b"\\u0000", b"\\ud800", b"1e999", b"NaN", b"}"])
        else:
            del text[at:at + rng.randint(1, 8)]
    return bytes(text)


# ---- the sender ------------------------------------------------------------------

ANSWER = re.compile(rb"^SIP/2\.0 (\d{3})([^\r\n]*)", re.M)
BRANCH = re.compile(rb"branch=([^;,\s]+)")


class Fuzzer:
    """Sends fuzz from 127.0.0.7 and counts what comes back (status lines, by class)."""

    def __init__(self, target, seed, tcp_share=0.3):
        self.t, self.seed, self.tcp_share = target, seed, tcp_share
        self.rng = random.Random(seed)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((STRANGER, 0))
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.udp, selectors.EVENT_READ, "udp")
        self.lock = threading.Lock()
        self.tcp, self.tcp_sent, self.old_tcp = None, 0, []
        self.sent: Counter[str] = Counter()         # by category
        self.answers: Counter[str] = Counter()      # by status class: "1xx" ... "6xx"
        self.codes: Counter[str] = Counter()        # status line -> count
        self.statuses: Counter[int] = Counter()     # status code -> count
        self.answered: Counter[str] = Counter()     # category -> messages answered (matched by branch)
        self.answered_branches = set()
        self.requests_received = 0      # requests sent to us (a binding we forged)
        self.unsendable = 0             # too big for a datagram, or the connection was gone
        self.recent = OrderedDict()     # branch -> (category, message), to explain a 500
        self.internal_errors = []       # (status line, category, message)
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- what to send --

    def _via_local(self, transport):
        if transport == "tcp":
            try:
                host, port = self._tcp().getsockname()
            except OSError:             # the proxy closed it just now
                host, port = self._tcp().getsockname()
        else:
            host, port = self.udp.getsockname()
        local = f"{host}:{port}"
        return f"SIP/2.0/{transport.upper()} {local};branch=z9hG4bK{_token(self.rng, 16)};rport", local

    def one(self):
        """Pick, build and send one fuzz message."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            port = rng.choice((("sip port", self.t.proxy_port), ("dtmf port", self.t.dtmf_port)))
            self._send_udp(f"dtmf-json -> {port[0]}", dtmf_report(rng, self.t), port[1])
            return
        transport = "tcp" if rng.random() < self.tcp_share else "udp"
        via, local = self._via_local(transport)
        if roll < 0.27:
            name, data = rng.choice(torture(rng, self.t, via, local))
            category = "RFC 4475 categories"
        else:
            names = list(TEMPLATES)
            name = rng.choices(names, [TEMPLATES[n][1] for n in names])[0]
            data = mutate(rng, TEMPLATES[name][0](rng, self.t, via, local))
            category = f"mutated {name}"
        if transport == "tcp":
            self._send_tcp(f"{category} / tcp", data, rotate=category.startswith("RFC"))
        else:
            self._send_udp(f"{category} / udp", data, self.t.proxy_port)

    def _remember(self, category, data):
        match = BRANCH.search(data)
        if match:
            with self.lock:
                self.recent[match.group(1)] = (category, data)
                while len(self.recent) > 5000:
                    self.recent.popitem(last=False)

    def _send_udp(self, category, data, port):
        self.sent[category] += 1
        self._remember(category, data)
        try:
            self.udp.sendto(data, ("127.0.0.1", port))
        except OSError:
            self.unsendable += 1

    def _tcp(self):
        with self.lock:
            if self.tcp is not None and self.tcp.fileno() < 0:
                self.tcp = None
        if self.tcp is None:
            sock = socket.create_connection(("127.0.0.1", self.t.proxy_port), timeout=2,
                                            source_address=(STRANGER, 0))
            sock.setblocking(False)
            with self.lock:
                self.sel.register(sock, selectors.EVENT_READ, "tcp")
            self.tcp, self.tcp_sent = sock, 0
        return self.tcp

    def _send_tcp(self, category, data, rotate):
        """On one connection for up to 20 messages (a torture message gets its own: a bad
        Content-Length leaves the stream out of step); old connections stay open 2 s for
        their answers."""
        self.sent[category] += 1
        self._remember(category, data)
        sock = self._tcp()
        try:
            sock.settimeout(2)
            sock.sendall(data)
            sock.setblocking(False)
        except OSError:
            self.unsendable += 1
            rotate = True
        self.tcp_sent += 1
        if rotate or self.tcp_sent >= 20:
            self.old_tcp.append((time.monotonic(), sock))
            self.tcp = None
        while self.old_tcp and time.monotonic() - self.old_tcp[0][0] > 2:
            self._close(self.old_tcp.pop(0)[1])

    def _close(self, sock):
        with self.lock:
            if sock is self.tcp:
                self.tcp = None
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
        sock.close()

    # -- what comes back --

    def _read(self):
        while not self._stop:
            with self.lock:
                ready = self.sel.select(timeout=0) if self.sel.get_map() else []
            if not ready:
                time.sleep(0.005)
                continue
            for key, _ in ready:
                try:
                    data = cast(socket.socket, key.fileobj).recv(65535)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data and key.data == "tcp":
                    self._close(key.fileobj)
                    continue
                self._count(data, key.fileobj)

    def _ack(self, sock, data):
        """ACK a negative final answer to an INVITE, as a user agent does (else tm resends it
        for 32 s). Best effort: the answer may be to a mutated INVITE."""
        def value(name):
            match = re.search(rb"^" + name + rb"\s*:\s*([^\r\n]*)", data, re.M | re.I)
            return match.group(1) if match else b""
        cseq = value(b"CSeq").split()
        if len(cseq) != 2 or cseq[1] != b"INVITE":
            return
        branch = BRANCH.search(data)
        with self.lock:
            sent = self.recent.get(branch.group(1)) if branch else None
        parts = sent[1].split(b" ", 2) if sent else []
        if len(parts) < 3:
            return
        ack = (b"ACK " + parts[1] + b" SIP/2.0\r\nVia: " + value(b"Via") + b"\r\nFrom: " + value(b"From")
               + b"\r\nTo: " + value(b"To") + b"\r\nCall-ID: " + value(b"Call-ID") + b"\r\nCSeq: "
               + cseq[0] + b" ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        try:
            if sock.type == socket.SOCK_DGRAM:
                sock.sendto(ack, ("127.0.0.1", self.t.proxy_port))
            else:
                sock.send(ack)
        except OSError:
            pass

    def _count(self, data, sock=None):
        starts = [m.start() for m in ANSWER.finditer(data)]
        if not starts and re.match(rb"[A-Za-z]+ \S+ SIP/2\.0", data):
            self.requests_received += 1
        for start, end in zip(starts, starts[1:] + [len(data)]):
            self._answer(data[start:end], sock)

    def _answer(self, answer, sock):
        status = ANSWER.match(answer)
        assert status, answer[:200]         # _count() cuts answers where ANSWER matches
        code, reason = status.groups()
        code = int(code)
        line = f"{code}{reason.decode('utf-8', 'replace')}"
        branch = BRANCH.search(answer)
        with self.lock:
            self.answers[f"{code // 100}xx"] += 1
            self.statuses[code] += 1
            self.codes[line] += 1
            cause = self.recent.get(branch.group(1)) if branch else None
            if branch and cause and branch.group(1) not in self.answered_branches:
                self.answered_branches.add(branch.group(1))
                self.answered[cause[0]] += 1
        if code >= 300 and sock is not None:
            self._ack(sock, answer)
        if code == 500:
            self.internal_errors.append((line, *(cause or ("?", b""))))

    def run(self, count, rate, probe=None, probe_every=1.0):
        """Send `count` messages at about `rate` per second; call probe() about every
        `probe_every` seconds (in another thread, so a slow answer delays nothing)."""
        probes, results = [], []
        start = last_probe = time.monotonic()
        for n in range(count):
            self.one()
            now = time.monotonic()
            if probe and now - last_probe >= probe_every:
                last_probe = now
                thread = threading.Thread(target=lambda: results.append(probe()))
                thread.start()
                probes.append(thread)
            ahead = start + (n + 1) / rate - now
            if ahead > 0:
                time.sleep(ahead)
        self.duration = time.monotonic() - start
        for thread in probes:
            thread.join()
        return results

    def stop(self, linger=2.0):
        """Wait `linger` seconds for late answers, then close everything."""
        time.sleep(linger)
        self._stop = True
        self._reader.join()
        for _, sock in self.old_tcp:
            self._close(sock)
        if self.tcp:
            self._close(self.tcp)
        self.udp.close()

    def figures(self):
        total = sum(self.sent.values())
        lines = [f"fuzz seed {self.seed}: {total} messages in {self.duration:.1f} s "
                 f"({total / self.duration:.0f}/s)",
                 "sent by category (answered: how many got an answer to their own Via branch):"]
        lines += [f"  {n:7d}  {c}  (answered: {self.answered[c]})" for c, n in sorted(self.sent.items())]
        lines.append("answers by status class: " + ", ".join(
            f"{k} {v}" for k, v in sorted(self.answers.items())))
        lines.append("most frequent answers:")
        lines += [f"  {n:7d}  {c}" for c, n in self.codes.most_common(15)]
        lines.append(f"requests received: {self.requests_received}, unsendable: {self.unsendable}, "
                     f"500 answers: {len(self.internal_errors)}")
        return "\n".join(lines)
