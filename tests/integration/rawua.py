"""A minimal SIP user agent on a raw UDP socket, for a call whose parties must take whatever
the proxy relays to them (the fuzz test's call: forged in-dialog requests reach them).

It answers every request it receives: an in-dialog INVITE with 200 and its SDP, a new INVITE
once with 200 (the call it waits for, when `answer` is set) and otherwise 486, anything else
200. It never fails on what it receives."""
import re
import socket
import threading
import uuid

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def header(message, name):
    """The first value of a header (case-insensitive), "" when absent."""
    match = re.search(rf"^{name}\s*:\s*(.*?)\r?$", message, re.M | re.I)
    return match.group(1).strip() if match else ""


def headers(message, name):
    return [m.strip() for m in re.findall(rf"^{name}\s*:\s*(.*?)\r?$", message, re.M | re.I)]


def status(message):
    match = re.match(r"SIP/2\.0 (\d{3})", message)
    return int(match.group(1)) if match else None


class RawUa:
    def __init__(self, proxy_port, user, domain, media_port=9):
        self.proxy = ("127.0.0.1", proxy_port)
        self.user, self.domain, self.media_port = user, domain, media_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.contact = f"sip:{user}@127.0.0.1:{self.port}"
        self.tag = uuid.uuid4().hex[:10]
        self.answer = False             # answer the next new INVITE (the call) with 200
        self.dialog = None              # {callid, local/remote uri+tag, remote contact, route}
        self.requests = []              # first lines of the requests received
        self._responses = {}            # branch -> [responses]
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # ---- sending ------------------------------------------------------------

    def _via(self, branch):
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport"

    def request(self, method, ruri, head, body="", timeout=5.0):
        """Send a request (retransmitted every 0.5 s) -> its final response (text)."""
        branch = "z9hG4bK" + uuid.uuid4().hex
        extra = "Content-Type: application/sdp\r\n" if body else ""
        text = (f"{method} {ruri} SIP/2.0\r\nVia: {self._via(branch)}\r\nMax-Forwards: 70\r\n"
                f"{head}{extra}Content-Length: {len(body)}\r\n\r\n{body}")
        with self._cond:
            self._responses[branch] = []
            waited = 0.0
            while waited < timeout:
                if not any(status(r) >= 200 for r in self._responses[branch]):
                    self.sock.sendto(text.encode(), self.proxy)
                self._cond.wait(0.5)
                waited += 0.5
                finals = [r for r in self._responses[branch] if status(r) >= 200]
                if finals:
                    return finals[0]
        raise AssertionError(f"{self.user}: no final answer to {method}")

    def register(self):
        answer = self.request(
            "REGISTER", f"sip:{self.domain}",
            f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}\r\n"
            f"To: <sip:{self.user}@{self.domain}>\r\nCall-ID: {uuid.uuid4().hex}\r\n"
            f"CSeq: 1 REGISTER\r\nContact: <{self.contact}>\r\nExpires: 300\r\n")
        assert status(answer) == 200, answer

    def call(self, to_user):
        """INVITE to_user, ACK the 200 -> the dialog (as this side sees it)."""
        callid, ruri = uuid.uuid4().hex, f"sip:{to_user}@{self.domain}"
        ok = self.request(
            "INVITE", ruri,
            f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}\r\nTo: <{ruri}>\r\n"
            f"Call-ID: {callid}\r\nCSeq: 1 INVITE\r\nContact: <{self.contact}>\r\n",
            SDP.format(port=self.media_port), timeout=10)
        assert status(ok) == 200, ok
        to = header(ok, "To")
        self.dialog = {
            "callid": callid, "local": f"<sip:{self.user}@{self.domain}>;tag={self.tag}",
            "remote": to, "remote_tag": to.rpartition("tag=")[2],
            "remote_contact": header(ok, "Contact").strip("<>"),
            "route": list(reversed(headers(ok, "Record-Route"))), "cseq": 1}
        self._send_in_dialog("ACK", cseq=1)
        return self.dialog

    def _send_in_dialog(self, method, cseq, wait=False):
        d = self.dialog
        assert d is not None, "no dialog yet"
        head = (f"From: {d['local']}\r\nTo: {d['remote']}\r\nCall-ID: {d['callid']}\r\n"
                f"CSeq: {cseq} {method}\r\n" + "".join(f"Route: {r}\r\n" for r in d["route"]))
        if wait:
            return self.request(method, d["remote_contact"], head)
        branch = "z9hG4bK" + uuid.uuid4().hex
        text = (f"{method} {d['remote_contact']} SIP/2.0\r\nVia: {self._via(branch)}\r\n"
                f"Max-Forwards: 70\r\n{head}Content-Length: 0\r\n\r\n")
        self.sock.sendto(text.encode(), self.proxy)

    def hang_up(self):
        """BYE in the dialog -> its final response."""
        return self._send_in_dialog("BYE", cseq=2, wait=True)

    # ---- receiving ----------------------------------------------------------

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, src = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            code = status(text)
            if code is not None:
                branch = header(text, "Via").partition("branch=")[2].split(";")[0]
                with self._cond:
                    if branch in self._responses:
                        self._responses[branch].append(text)
                        self._cond.notify_all()
            elif re.match(r"[A-Za-z]+ ", text):
                self.requests.append(text.partition("\r\n")[0])
                self._answer(text, src)

    def _answer(self, text, src):
        method = text.split(" ", 1)[0]
        if method == "ACK":
            return
        to = header(text, "To")
        code, body, head = 200, "", ""
        if method == "INVITE":
            if "tag=" in to:                        # a re-INVITE: take it
                body = SDP.format(port=self.media_port)
            elif self.answer:
                self.answer = False
                body = SDP.format(port=self.media_port)
            else:
                code = 486
            head = "".join(f"Record-Route: {rr}\r\n" for rr in headers(text, "Record-Route"))
            head += f"Contact: <{self.contact}>\r\n"
        if "tag=" not in to:
            to += f";tag={self.tag}"
        reason = {200: "OK", 486: "Busy Here"}[code]
        vias = "".join(f"Via: {v}\r\n" for v in headers(text, "Via"))
        reply = (f"SIP/2.0 {code} {reason}\r\n{vias}From: {header(text, 'From')}\r\nTo: {to}\r\n"
                 f"Call-ID: {header(text, 'Call-ID')}\r\nCSeq: {header(text, 'CSeq')}\r\n{head}"
                 + ("Content-Type: application/sdp\r\n" if body else "")
                 + f"Content-Length: {len(body)}\r\n\r\n{body}")
        try:
            self.sock.sendto(reply.encode(), src)
        except OSError:
            pass

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()
