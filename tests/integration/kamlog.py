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

    def python_errors(self):
        """(innermost frame, exception) -> count, for the tracebacks logged since the mark."""
        found = Counter()
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
