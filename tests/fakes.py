"""Fakes of the adapters' outside world, for unit tests of the adapters and the engine.

Import them as `from fakes import RecordingNg` (tests/conftest.py puts tests/ on sys.path)."""
from vpbx.ngclient import NgError

OK = {"result": "ok"}
DEFAULT_REPLIES = {"ping": {"result": "pong"}}


class RecordingNg:
    """Stands in for ngclient.NgClient: records every command and answers canned replies.

    - `commands`: [(command, args)] in order, args as the caller passed them (keyword names with
      underscores, as to NgClient.command; `call_id` included).
    - `replies`: command -> reply dict, or a function(args) -> reply dict; `{"result": "ok"}`
      for any other command. Each answer is a fresh copy.
    - `errors`: command -> the error reason rtpengine would give, or a function(args) -> the
      reason or None (None: no error for those args). The command is recorded, then
      NgError("rtpengine <command>: <reason>") is raised, as NgClient does.
    - `ping()` and `calls()` answer like NgClient's: "pong", and the Call-IDs offered and
      not deleted since.
    """

    def __init__(self, replies=None, errors=None):
        self.commands = []
        self.replies = {**DEFAULT_REPLIES, **(replies or {})}
        self.errors = dict(errors or {})

    def command(self, name, **args):
        self.commands.append((name, args))
        reason = self.errors.get(name)
        if callable(reason):
            reason = reason(args)
        if reason is not None:
            raise NgError(f"rtpengine {name}: {reason}")
        reply = self.replies.get(name, OK)
        if callable(reply):
            reply = reply(args)
        return dict(reply)

    def ping(self):
        return self.command("ping").get("result") == "pong"

    def calls(self):
        held = []
        for name, args in self.commands:
            if name == "offer" and args.get("call_id") not in held:
                held.append(args.get("call_id"))
            elif name == "delete" and args.get("call_id") in held:
                held.remove(args.get("call_id"))
        return held

    # ---- for assertions -------------------------------------------------------------

    def names(self):
        """The commands sent, in order."""
        return [name for name, _ in self.commands]

    def sent(self, *keys):
        """[(command, the args named by keys, None where absent)], e.g. sent("from_tag")."""
        return [(name, *(args.get(k) for k in keys)) for name, args in self.commands]

    def clear(self):
        self.commands.clear()
