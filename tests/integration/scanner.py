"""Run a SIPVicious tool (Debian package sipvicious 0.3.3) as a scanner that hides what it
is, from a given address: `scanner.py svwar|svcrack BIND_IP ARGS...`.

- An ordinary User-Agent instead of its "friendly-scanner", so that a test exercises the
  proxy's auth defences and not a User-Agent filter. SIPVicious has no option for it: the
  default of the one function that writes its requests (svhelper.makeRequest) is replaced.
- Bound to BIND_IP (e.g. 127.0.0.7, a stranger's address): the tools' -b option is parsed
  but never handed to their scanner class in 0.3.3, so that class's default is replaced.
"""
import importlib
import sys

sys.path.insert(0, "/usr/share/sipvicious")

from sipvicious.libs import svhelper  # noqa: E402

USER_AGENT = "Yealink SIP-T46S 66.86.0.15"


def set_default(function, name, value):
    code = function.__code__
    names = code.co_varnames[:code.co_argcount]
    defaults = list(function.__defaults__)
    defaults[names.index(name) - (len(names) - len(defaults))] = value
    function.__defaults__ = tuple(defaults)


def disguise():
    set_default(svhelper.makeRequest, "useragent", USER_AGENT)


def bind_to(module, ip):
    for value in vars(module).values():
        init = getattr(value, "__init__", None)
        code = getattr(init, "__code__", disguise.__code__)
        if isinstance(value, type) and "bindingip" in code.co_varnames:
            set_default(init, "bindingip", ip)


def sample_request():
    """A request as the tools write it (for a test that the disguise holds)."""
    return svhelper.makeRequest("REGISTER", "<sip:100@x>", "<sip:100@x>", "127.0.0.1", 5060, "c1")


if __name__ == "__main__":
    disguise()
    tool, ip = sys.argv[1:3]
    module = importlib.import_module(f"sipvicious.{tool}")
    bind_to(module, ip)
    sys.argv = [tool, *sys.argv[3:]]
    sys.exit(module.main())
