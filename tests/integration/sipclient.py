"""A raw UDP SIP client for attack tests: its own socket on any loopback address (127.0.0.7
stands for a foreign host), requests written by hand, digest answers computed here."""
import hashlib
import re
import socket
import uuid


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Response:
    def __init__(self, text):
        self.text = text
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        self.status_line = head[0]
        self.code = int(head[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), value.strip())

    def header(self, name):
        return self.headers.get(name.lower(), "")

    @property
    def challenge(self):
        """The digest challenge's parameters (WWW- or Proxy-Authenticate)."""
        value = self.header("WWW-Authenticate") or self.header("Proxy-Authenticate")
        return dict(re.findall(r'(\w+)="?([^",]*)"?', value.partition(" ")[2]))

    def __repr__(self):
        return self.status_line


class SipClient:
    def __init__(self, proxy_port, ip="127.0.0.1", timeout=3.0):
        self.proxy = ("127.0.0.1", proxy_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(timeout)
        self.ip, self.port = self.sock.getsockname()

    def close(self):
        self.sock.close()

    def send(self, message):
        """Send a request as it is -> its final response (provisional ones skipped)."""
        self.sock.sendto(message.encode() if isinstance(message, str) else message, self.proxy)
        while True:
            response = Response(self.sock.recv(65535).decode(errors="replace"))
            if response.code >= 200:
                return response

    def request(self, method, user, domain, *, to_user=None, callid=None, cseq=1,
                authorization="", contact_port=None, user_agent="Yealink SIP-T46S"):
        """REGISTER (To = From = user@domain) or INVITE (to to_user@domain) -> final response."""
        message = self.message(method, user, domain, to_user=to_user, callid=callid, cseq=cseq,
                               authorization=authorization, contact_port=contact_port,
                               user_agent=user_agent)
        response = self.send(message)
        if method == "INVITE":
            self.ack(message, response)
        return response

    def message(self, method, user, domain, *, to_user=None, callid=None, cseq=1,
                authorization="", contact_port=None, user_agent="Yealink SIP-T46S"):
        """The request text `request` sends (sent again as it is: a retransmission)."""
        callid = callid or uuid.uuid4().hex
        to_user = user if method == "REGISTER" else to_user or user
        ruri = f"sip:{domain}" if method == "REGISTER" else f"sip:{to_user}@{domain}"
        contact = f"<sip:{user}@{self.ip}:{contact_port or self.port}>"
        message = (
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={callid[:8]}\r\n"
            f"To: <sip:{to_user}@{domain}>\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: {contact}\r\nUser-Agent: {user_agent}\r\n"
            + ("Expires: 300\r\n" if method == "REGISTER" else "")
            + authorization + "Content-Length: 0\r\n\r\n")
        return message

    def ack(self, invite, response):
        """Acknowledge a final answer to `invite` (a negative one: the same branch)."""
        ruri = invite.split(" ", 2)[1]
        head = {name.lower(): value for name, value in re.findall(r"^([\w-]+): (.*?)\r$", invite, re.M)}
        self.sock.sendto((
            f"ACK {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={_branch(invite)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {head['from']}\r\n"
            f"To: {response.header('To')}\r\nCall-ID: {head['call-id']}\r\n"
            f"CSeq: {head['cseq'].split()[0]} ACK\r\nContent-Length: 0\r\n\r\n").encode(), self.proxy)

    def login(self, method, user, domain, password, *, auth_user=None, to_user=None, contact_port=None):
        """The request, then again with digest credentials for the challenge (qop=auth)
        -> (the challenge, the final answer to the authenticated request)."""
        callid = uuid.uuid4().hex
        first = self.request(method, user, domain, to_user=to_user, callid=callid,
                             contact_port=contact_port)
        if first.code not in (401, 407):
            return first, first
        ruri = f"sip:{domain}" if method == "REGISTER" else f"sip:{to_user or user}@{domain}"
        header = "Authorization" if first.code == 401 else "Proxy-Authorization"
        credentials = digest(method, ruri, auth_user or user, password, first.challenge)
        second = self.request(method, user, domain, to_user=to_user, callid=callid, cseq=2,
                              authorization=f"{header}: {credentials}\r\n",
                              contact_port=contact_port)
        return first, second


def digest(method, uri, user, password, challenge, nc=1):
    realm, nonce = challenge["realm"], challenge["nonce"]
    cnonce = uuid.uuid4().hex[:16]
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={nc:08x}')


def _branch(message):
    match = re.search(r"branch=([^;\r]+)", message)
    assert match, message
    return match.group(1)
