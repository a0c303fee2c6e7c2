"""A real softphone for tests: baresip (Debian), headless, sending a tone from a WAV file and
recording what it receives (sndfile module), controlled over ctrl_tcp (JSON netstrings)."""
import json
import math
import os
import signal
import socket
import struct
import subprocess
import wave
from pathlib import Path

from harness import free_port, wait_for

RATE = 8000


def write_tone(path, freq, seconds=60):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / RATE)))
                               for i in range(RATE * seconds)))


def tone_power(samples, freq, rate=RATE):
    """Goertzel: the power of one frequency in the samples."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


class Baresip:
    def __init__(self, workdir, user, domain, proxy, tone_hz, password=None, rtp_base=40000,
                 answermode="auto"):
        self.dir = Path(workdir) / f"baresip-{user}"
        self.dir.mkdir()
        self.user, self.domain, self.tone_hz = user, domain, tone_hz
        self.ctrl_port = free_port()
        write_tone(self.dir / "tone.wav", tone_hz)
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{free_port()}",
            "net_interface 127.0.0.1",
            f"rtp_ports {rtp_base}-{rtp_base + 99}",
            f"audio_source aufile,{self.dir / 'tone.wav'}",
            "audio_player alsa,null",
            "audio_alert alsa,null",
            "module_path /usr/lib/baresip/modules",
            "module g711.so", "module aufile.so", "module alsa.so", "module sndfile.so",
            "module_app account.so", "module_app menu.so", "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.dir}", ""]))
        auth = f";auth_pass={password}" if password else ""
        (self.dir / "accounts").write_text(
            f'<sip:{user}@{domain}>{auth};outbound="sip:{proxy}";answermode={answermode};regint=300;'
            "audio_codecs=PCMU\n")
        self.log = self.dir / "log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], cwd=self.dir, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def output(self):
        return self.log.read_text(errors="replace")

    def wait_output(self, text, timeout=10):
        wait_for(lambda: text in self.output(), timeout,
                 what=f"baresip {self.user}: {text!r}\n{self.output()[-1500:]}")

    def registered(self):
        self.wait_output(f"{self.user}@{self.domain}: {{0/UDP/v4}} 200 OK")

    def command(self, name, params=""):
        body = json.dumps({"command": name, "params": params, "token": name}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as s:
            s.sendall(b"%d:%s," % (len(body), body))
            s.recv(4096)

    def received_tones(self):
        """Power of this phone's and other frequencies in the last 2 s it received."""
        path = next(self.dir.glob("dump-*-dec.wav"))
        with wave.open(str(path)) as w:
            frames = w.readframes(w.getnframes())
        samples = struct.unpack(f"<{len(frames) // 2}h", frames)[-2 * RATE:]
        return lambda freq: tone_power(samples, freq)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
