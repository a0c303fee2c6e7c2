"""Kamailio's log as a test sees it: what was appended since a mark, and the Python
tracebacks in it (every input path must be handled on purpose: none may appear)."""
import re
from collections import Counter


class LogMark:
    def __init__(self, cfg):
        self.path = cfg.var / "log" / "kamailio.log"
        self.start = self.path.stat().st_size

    def text(self):
        with open(self.path, "rb") as log:
            log.seek(self.start)
            return log.read().decode("utf-8", "replace")

    def complaints(self, top=12):
        """Kamailio's ERROR and WARNING lines since the mark, by where they come from, and
        some notes on refused input: [(count, what)], most frequent first."""
        text = self.text()
        found = Counter(f"{level} {where} {func}()" for level, where, func in re.findall(
            r"(ERROR|WARNING): \S+ \[([^\]:]+):\d+\]: (\w+)\(\)", text))
        for note in ("that is no DTMF report", "refused: not UTF-8", "refused: NUL byte",
                     "vpbx: malformed", "failed to send 400 reply"):
            found[f"proxy: {note}"] = text.count(note)
        return [(n, what) for what, n in found.most_common(top) if n]

    def python_errors(self):
        """(innermost frame, exception) -> count, for the tracebacks logged since the mark."""
        found: Counter[tuple[str, str]] = Counter()
        for block in self.text().split("Traceback (most recent call last):")[1:]:
            frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', block)
            exception = re.search(r"^\s*(\w+(?:Error|Exception|Exit)\b.*)$", block, re.M)
            where = ":".join(frames[-1]) if frames else "?"
            found[(where, exception.group(1)[:200] if exception else "?")] += 1
        return found

    def assert_no_python_errors(self):
        errors = self.python_errors()
        assert not errors, "Python tracebacks in kamailio.log:\n" + "\n".join(
            f"{n} x {where}: {what}" for (where, what), n in errors.most_common())
