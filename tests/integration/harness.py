"""Test harness: SIPp parties, RTP endpoints and leak checks against a real vpbx stack."""
import itertools
import os
import re
import socket
import struct
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from ports import bindable, free_port  # noqa: F401  (free_port re-exported for the tests)

PARTIES = Path(__file__).parent / "parties"


def wait_for(predicate, timeout=5.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


_next_media_port = iter(range(20000, 29996, 4))


def sipp_media_ports():
    """Four ports in a row for SIPp's -mp, below the kernel's ephemeral range (32768-60999):
    ports taken free from that range could go to another socket before SIPp binds them."""
    while True:
        base = next(_next_media_port)
        if all(bindable(port) for port in range(base, base + 4)):
            return base


_next_sip_port = itertools.cycle(range(16000, 19800))


def sipp_port():
    """A port for a SIPp party's SIP or control socket, below the ephemeral range like
    sipp_media_ports: a port taken free from that range could go to another socket (any
    test's bind to port 0) before SIPp binds it, and the party would never start."""
    while True:
        port = next(_next_sip_port)
        if bindable(port):
            return port


class Sipp:
    """One SIPp process playing one party from parties/NAME.xml."""
    media: "RtpPeer"        # set by the helpers that give a party RTP of its own

    def __init__(self, workdir, scenario, proxy, *, port=None, variables=None, user=None,
                 password=None, duration_ms=0, timeout_s=20, name=None, ip="127.0.0.1"):
        self.port = port or sipp_port()
        self.name = name or scenario
        self.workdir = Path(workdir)
        argv = ["sipp", "-sf", str(PARTIES / f"{scenario}.xml"), "-i", ip,
                "-p", str(self.port), "-cp", str(sipp_port()),
                "-mp", str(sipp_media_ports()), "-m", "1", "-nostdin", "-timeout", f"{timeout_s}s",
                "-timeout_error", "-d", str(duration_ms), "-trace_err", "-trace_msg",
                "-message_file", str(self.workdir / f"{self.name}.msg"),
                "-error_file", str(self.workdir / f"{self.name}.err")]
        if user:
            argv += ["-au", user, "-ap", password or ""]
        for key, value in (variables or {}).items():
            argv += ["-set", key, str(value)]
        argv.append(proxy)
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait(self, timeout=30):
        """Exit code of SIPp (0: the scenario passed)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
            raise AssertionError(f"{self.name}: SIPp did not finish within {timeout} s") from None
        return self.proc.returncode

    def passed(self, timeout=30):
        code = self.wait(timeout)
        assert code == 0, f"{self.name}: SIPp exit {code}\n{self.report()}"
        return True

    def report(self):
        parts = [self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""]
        for suffix in ("err", "msg"):
            path = self.workdir / f"{self.name}.{suffix}"
            if path.exists():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def messages(self):
        """The SIP messages this party received and sent (SIPp's -trace_msg)."""
        path = self.workdir / f"{self.name}.msg"
        return path.read_text(errors="replace") if path.exists() else ""

    def received(self, first_line_prefix=""):
        """Messages this party received whose first line starts with the prefix."""
        return self._traced("message received", first_line_prefix)

    def sent(self, first_line_prefix=""):
        """Messages this party sent whose first line starts with the prefix."""
        return self._traced("message sent", first_line_prefix)

    def _traced(self, direction, first_line_prefix):
        found = []
        for block in re.split(r"^-{10,} .*$", self.messages(), flags=re.M):
            head, _, message = block.strip().partition("\n")
            if direction in head:
                message = message.strip()
                if message.startswith(first_line_prefix):
                    found.append(message)
        return found

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


PAUSE = 1.0


class RtpPeer:
    """A media endpoint: sends PCMU packets with its own SSRC (and RFC 4733 DTMF events,
    payload type 101) and counts what it receives, by SSRC; received events by digit."""

    def __init__(self, ssrc, ip="127.0.0.1"):
        self.ssrc = ssrc
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.received: Counter[int] = Counter()
        self.audio = defaultdict(bytearray)     # PCMU payloads received, by SSRC
        self.events = []                # digits of the RFC 4733 events received (end packets)
        self.event_packets = []         # the digit of every RFC 4733 packet received
        self._ended = set()             # (digit, timestamp) of events already counted
        self.seq, self.ts = 1000, 160000

    def _send(self, dest_port, payload_type, payload, marker=False, ts=None):
        header = struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), self.seq & 0xFFFF,
                             self.ts if ts is None else ts, self.ssrc)
        self.sock.sendto(header + payload, ("127.0.0.1", dest_port))
        self.seq += 1

    def exchange(self, dest_port, count=25, interval=0.02):
        """Send `count` audio packets to 127.0.0.1:dest_port while receiving."""
        self.sock.settimeout(interval)
        for _ in range(count):
            self._send(dest_port, 0, b"\xff" * 160)
            self.ts += 160
            self._drain(interval)
        self._drain(0.2)

    def dtmf(self, dest_port, digits, interval=0.02, gap=0.12):
        """Type digits as RFC 4733 events (with correct sequence numbers and timestamps),
        audio in between, as a phone does. A comma is a pause of PAUSE seconds."""
        self.sock.settimeout(interval)
        for digit in digits:
            if digit == ",":
                self.exchange(dest_port, int(PAUSE / interval), interval)
                continue
            event = "0123456789*#ABCD".index(digit)
            start = self.ts
            for i in range(1, 8):                   # 7 x 20 ms, the last 3 with the end bit
                end = i >= 5
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, 160 * (min(i, 5)))
                self._send(dest_port, 101, payload, marker=(i == 1), ts=start)
                self._drain(interval)
            self.ts += 160 * 5
            for _ in range(int(gap / interval)):
                self._send(dest_port, 0, b"\xff" * 160)
                self.ts += 160
                self._drain(interval)
        self._drain(0.2)

    def _drain(self, duration):
        end = time.monotonic() + duration
        while time.monotonic() < end:
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            if len(data) >= 12 and data[0] >> 6 == 2:
                ssrc = struct.unpack("!I", data[8:12])[0]
                self.received[ssrc] += 1
                if data[1] & 0x7F == 0:
                    self.audio[ssrc] += data[12 + 4 * (data[0] & 0x0F):]
                if data[1] & 0x7F == 101 and len(data) >= 16:
                    digit = "0123456789*#ABCD"[data[12]] if data[12] < 16 else "?"
                    self.event_packets.append(digit)
                    if not data[13] & 0x80:
                        continue
                    ts = data[4:8]
                    if (digit, ts) not in self._ended:
                        self._ended.add((digit, ts))
                        self.events.append(digit)
    def flush(self):
        """Forget what has been received so far (and what waits unread in the socket)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(4096)
        except BlockingIOError:
            pass
        self.received.clear()
        self.audio.clear()

    def samples(self, ssrc):
        """The linear samples of the PCMU audio received from `ssrc`."""
        return [ulaw_decode(b) for b in self.audio[ssrc]]

    def close(self):
        self.sock.close()


def ulaw_decode(byte):
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + 0x84) << ((byte & 0x70) >> 4)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


def exchange_media(*pairs):
    """Run RtpPeer.exchange for (peer, dest_port) pairs at the same time."""
    threads = [threading.Thread(target=peer.exchange, args=(port,)) for peer, port in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def read_port(workdir, party, timeout=10):
    path = Path(workdir) / f"{party}.rport"
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout, what=f"{path.name}")
    return int(path.read_text().strip())


def kamcmd(stack_cfg, *args):
    out = subprocess.run(["kamcmd", "-s", f"unix:{stack_cfg.var / 'run' / 'kamailio_ctl'}", *args],
                         capture_output=True, text=True, timeout=10)
    return out.stdout + out.stderr


def tm_current(stack_cfg):
    return tm_stat(stack_cfg, "current")


def tm_stat(stack_cfg, name):
    """A counter of tm.stats (current, created, ...); -1 when missing."""
    match = re.search(rf"\b{name}:\s*(\d+)", kamcmd(stack_cfg, "tm.stats"))
    return int(match.group(1)) if match else -1
