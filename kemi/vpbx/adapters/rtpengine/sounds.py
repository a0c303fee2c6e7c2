"""The PBX's own sounds, generated (no third-party recordings): hold music, the ringback tone
in the tenant's cadence, the failure tone. WAV, 8 kHz mono 16 bit, as rtpengine plays them.

Files are made on first use in a directory rtpengine can read, named by their parameters,
and written atomically (several Kamailio processes may ask at once).
"""
import math
import os
import struct
import tempfile
import wave
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

RATE = 8000
LEVEL = 0.25            # of full scale: comfortable, never clipping

# A slow arpeggio over four chords (C, A minor, F, G), each note with a soft envelope.
_CHORDS = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63),
           (174.61, 220.00, 261.63), (196.00, 246.94, 293.66))


def _tone(hz: float, seconds: float, envelope: float = 0.02) -> Iterator[float]:
    n = int(RATE * seconds)
    ramp = max(1, int(RATE * envelope))
    for i in range(n):
        gain = min(1.0, i / ramp, (n - i) / ramp)
        yield gain * math.sin(2 * math.pi * hz * i / RATE)


def _silence(seconds: float) -> Iterator[float]:
    return (0.0 for _ in range(int(RATE * seconds)))


def music_samples() -> Iterator[float]:
    for chord in _CHORDS:
        for _ in range(2):
            for hz in chord:
                yield from _tone(hz, 0.5, envelope=0.08)


def ringback_samples(hz: float, on_ms: int, off_ms: int) -> Iterator[float]:
    yield from _tone(hz, on_ms / 1000)
    yield from _silence(off_ms / 1000)


def failure_samples() -> Iterator[float]:
    """The special information tone (950, 1400, 1800 Hz), then a short pause."""
    for hz in (950, 1400, 1800):
        yield from _tone(hz, 0.33)
    yield from _silence(0.3)


def _write(path: Path, samples: Iterable[float]) -> None:
    frames = b"".join(struct.pack("<h", int(32767 * LEVEL * s)) for s in samples)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    with wave.open(tmp, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    os.replace(tmp, path)


class Sounds:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _file(self, name: str, samples: Callable[[], Iterable[float]]) -> str:
        path = self.dir / name
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            _write(path, samples())
        return str(path)

    def music(self) -> str:
        return self._file("music.wav", music_samples)

    def ringback(self, hz: int = 425, on_ms: int = 1000, off_ms: int = 4000) -> str:
        return self._file(f"ringback-{hz}-{on_ms}-{off_ms}.wav",
                          lambda: ringback_samples(hz, on_ms, off_ms))

    def failure(self) -> str:
        return self._file("failure.wav", failure_samples)
