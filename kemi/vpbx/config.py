"""The VPBX_* environment: every setting of one vpbx instance, read by `scripts/vpbx` (stack,
cli) and by the proxy inside Kamailio, with one default each.

`Config.from_env(environ)` reads and checks the variables; a bad value raises ConfigError
(a ValueError naming the variable). `Config.to_env()` is the inverse: the stack passes it to
Kamailio, so the proxy reads the very configuration the stack started it with. Defaults only
matter to a Kamailio started by hand. README "Ports and addresses" lists the same variables
and defaults (tests/unit/test_config.py checks the two agree).

No Redis, rtpengine or socket here: the clients are made by their users (stack.Config adds
them for the tooling; the proxy makes its lean ones).
"""
import ipaddress
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]      # the source tree (kemi/vpbx/config.py)

_SECRET = re.compile(r"[A-Za-z0-9._~+/=-]{32,256}")
_ALIAS = re.compile(r"[A-Za-z0-9._:\[\]-]+")
MAX_CHILDREN = 1024
MAX_REDIS_DB = 15           # Redis has databases 0-15 unless its `databases` setting says more


class ConfigError(ValueError):
    """A VPBX_* variable with a bad value."""


def _setting(env, default, shown, doc):
    """A field read from the environment variable `env`; `shown` is the default as the README
    table shows it."""
    return field(default=default, metadata={"env": env, "shown": shown, "doc": doc})


@dataclass(frozen=True)
class Config:
    listen: str = _setting(
        "VPBX_LISTEN", "127.0.0.1", "`127.0.0.1`",
        "IP address of SIP and RTP: the public face, what phones and trunks reach")
    control: str = _setting(
        "VPBX_CONTROL_LISTEN", "127.0.0.1", "`127.0.0.1`",
        "IP address of the control plane: rtpengine's ng port, Kamailio's DTMF-report socket")
    sip_port: int = _setting("VPBX_SIP_PORT", 5060, "`5060`", "SIP port, UDP and TCP")
    dtmf_port: int = _setting(
        "VPBX_DTMF_PORT", 5070, "`5070`",
        "UDP port on the control address where rtpengine reports RFC 4733 digits")
    external_redis: str = _setting(
        "VPBX_REDIS_URL", "", "*(unset)*",
        "redis:// URL of a Redis to use instead of starting a private one")
    redis_port: int = _setting("VPBX_REDIS_PORT", 16379, "`16379`",
                               "port of the private Redis (127.0.0.1)")
    redis_timeout_ms: int = _setting(
        "VPBX_REDIS_TIMEOUT_MS", 50, "`50`",
        "the proxy's bound on one Redis round trip (connect, send, reply), 1-5000 ms")
    ng_port: int = _setting("VPBX_RTPE_PORT", 2223, "`2223`",
                            "port of the private rtpengine's ng socket (on the control address)")
    external_rtpe: str = _setting(
        "VPBX_RTPE_ADDR", "", "*(unset)*",
        "IP:port of the ng socket of a running rtpengine to use instead of starting one")
    rtpe_redis_db: int | None = _setting(
        "VPBX_RTPE_REDIS_DB", 1, "`1`",
        "Redis database (0-15, not the proxy's) where the private rtpengine keeps its sessions; "
        "`off`: none")
    rtp_ports: tuple = _setting("VPBX_RTP_PORTS", (30000, 30999), "`30000-30999`",
                                "rtpengine's RTP port range, LOW-HIGH")
    children: int = _setting("VPBX_CHILDREN", 4, "`4`",
                             f"Kamailio SIP worker processes per socket (1-{MAX_CHILDREN})")
    aliases: tuple = _setting("VPBX_ALIASES", (), "*(unset)*",
                              "comma-separated host:port other names of this proxy")
    auth_secret: str = _setting(
        "VPBX_AUTH_SECRET", "", "*(unset)*",
        "digest nonce and Record-Route mark secret (32-256 of A-Za-z0-9._~+/=-); unset: the one in Redis")
    var: Path = _setting("VPBX_VAR", ROOT / "var", "`var/` in the source tree",
                         "runtime directory: run/, log/, redis/, sounds/")
    sounds: Path = _setting("VPBX_SOUNDS", None, "`$VPBX_VAR/sounds`",
                            "where the generated music and tones are written (rtpengine reads them)")
    rpc_sock: Path = _setting("VPBX_RPC_SOCK", None, "`$VPBX_VAR/run/kamailio_rpc.sock`",
                              "Kamailio's JSON-RPC datagram socket (the proxy cancels with it)")

    def __post_init__(self):
        # The defaults under var/ follow it; paths are absolute (Kamailio runs in var/).
        var = Path(self.var).resolve()
        object.__setattr__(self, "var", var)
        object.__setattr__(self, "sounds", Path(self.sounds or var / "sounds").resolve())
        object.__setattr__(self, "rpc_sock",
                           Path(self.rpc_sock or var / "run" / "kamailio_rpc.sock").resolve())
        object.__setattr__(self, "listen", _ip("listen", self.listen))
        object.__setattr__(self, "control", _ip("control", self.control))
        for name in ("sip_port", "dtmf_port", "redis_port", "ng_port"):
            _port(name, getattr(self, name))
        if self.external_redis:
            _redis_url("external_redis", self.external_redis)
        if self.external_rtpe:
            _hostport("external_rtpe", self.external_rtpe)
        low, high = self.rtp_ports
        _port("rtp_ports", low)
        _port("rtp_ports", high)
        if low >= high:
            raise ConfigError(f"{env_name('rtp_ports')} takes LOW-HIGH with LOW below HIGH, "
                              f"not {low}-{high}")
        if not 1 <= self.redis_timeout_ms <= 5000:
            raise ConfigError(f"{env_name('redis_timeout_ms')} takes 1 to 5000, not {self.redis_timeout_ms}")
        if self.rtpe_redis_db is not None and not 0 <= self.rtpe_redis_db <= MAX_REDIS_DB:
            raise ConfigError(f"{env_name('rtpe_redis_db')} takes 0 to {MAX_REDIS_DB} "
                              f"or off, not {self.rtpe_redis_db}")
        if self.private_rtpe and self.rtpe_redis_db == self.redis_db:
            raise ConfigError(f"{env_name('rtpe_redis_db')} must differ from the proxy's Redis "
                              f"database ({self.redis_db})")
        if not 1 <= self.children <= MAX_CHILDREN:
            raise ConfigError(f"{env_name('children')} takes 1 to {MAX_CHILDREN}, not {self.children}")
        for alias in self.aliases:
            if not _ALIAS.fullmatch(alias):
                raise ConfigError(f"{env_name('aliases')} takes comma-separated host:port, "
                                  f"not {alias!r}")
        if self.auth_secret and not _SECRET.fullmatch(self.auth_secret):
            raise ConfigError(f"{env_name('auth_secret')} takes 32 to 256 characters of "
                              "A-Z a-z 0-9 . _ ~ + / = -")
        if (self.control, self.dtmf_port) == (self.listen, self.sip_port):
            raise ConfigError(f"{env_name('dtmf_port')} must differ from {env_name('sip_port')} "
                              "on one address")

    @classmethod
    def from_env(cls, environ):
        """The configuration the VPBX_* variables of `environ` (a mapping, e.g. os.environ)
        give; a variable that is unset or empty takes its default. ConfigError for a bad value."""
        values = {}
        for f in fields(cls):
            text = environ.get(f.metadata["env"], "")
            if text:
                values[f.name] = _PARSE.get(f.name, _text)(f.name, text)
        return cls(**values)

    def to_env(self):
        """{VPBX_* variable: text} of every setting: from_env of it gives this configuration."""
        return {f.metadata["env"]: _RENDER.get(f.name, str)(getattr(self, f.name)) for f in fields(self)}

    # ---- what the settings make ---------------------------------------------

    @property
    def host(self):
        """The listen address as it appears in a URI or host:port."""
        return _bracketed(self.listen)

    @property
    def redis_url(self):
        return self.external_redis or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def redis_db(self):
        """The number of the proxy's Redis database (the URL's /DB, 0 when absent)."""
        return int(urlparse(self.redis_url).path.strip("/") or 0)

    @property
    def private_redis_port(self):
        """The port of the Redis the stack starts; 0 when VPBX_REDIS_URL names another."""
        return 0 if self.external_redis else self.redis_port

    @property
    def private_rtpe(self):
        """False when VPBX_RTPE_ADDR names a running rtpengine: the stack starts none."""
        return not self.external_rtpe

    @property
    def rtpe_host(self):
        return _hostport("external_rtpe", self.external_rtpe)[0] if self.external_rtpe else self.control

    @property
    def rtpe_port(self):
        return _hostport("external_rtpe", self.external_rtpe)[1] if self.external_rtpe else self.ng_port

    @property
    def rtpe(self):
        """rtpengine's ng address as host:port."""
        return f"{_bracketed(self.rtpe_host)}:{self.rtpe_port}"

    @property
    def dtmf_socket(self):
        """Kamailio's UDP socket for rtpengine's DTMF reports, as host:port."""
        return f"{_bracketed(self.control)}:{self.dtmf_port}"


def settings():
    """[(variable, default as the README shows it, what it is)] in the order of the fields."""
    return [(f.metadata["env"], f.metadata["shown"], f.metadata["doc"]) for f in fields(Config)]


def env_name(name):
    return next(f.metadata["env"] for f in fields(Config) if f.name == name)


def _bracketed(host):
    return f"[{host}]" if ":" in host else host


def _ip(name, text):
    """An IP address (brackets of an IPv6 one dropped), as written."""
    try:
        ipaddress.ip_address(text.strip("[]"))
        return text.strip("[]")
    except ValueError:
        raise ConfigError(f"{env_name(name)} takes an IP address, not {text!r}") from None


def _int(name, text):
    if not text.strip().isdigit():
        raise ConfigError(f"{env_name(name)} takes a whole number, not {text!r}")
    return int(text)


def _int_or_off(name, text):
    return None if text.strip() == "off" else _int(name, text)


def _port(name, number):
    if not 1 <= number <= 65535:
        raise ConfigError(f"{env_name(name)}: {number} is no port (1-65535)")
    return number


def _hostport(name, text):
    """'IP:port' or '[IPv6]:port' -> (IP, port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        raise ConfigError(f"{env_name(name)} takes IP:PORT ([IPv6]:PORT), not {text!r}")
    return _ip(name, host), _port(name, int(port))


def _redis_url(name, url):
    """redis://[[user]:password@]host[:port][/db]: what both Redis clients (redis-py for the
    tools, resp.Client for the proxy) take."""
    try:
        u = urlparse(url)
        _ = u.port                  # ValueError when it is no number
        good = u.scheme == "redis" and (u.path.strip("/") or "0").isdigit()
    except ValueError:
        good = False
    if not good:
        # Not the URL itself: it may hold a password.
        raise ConfigError(f"{env_name(name)} takes redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]")


def _port_range(name, text):
    low, dash, high = text.partition("-")
    if not dash:
        raise ConfigError(f"{env_name(name)} takes LOW-HIGH, not {text!r}")
    return _int(name, low.strip()), _int(name, high.strip())


def _text(name, text):
    return text


def _list(name, text):
    return tuple(item.strip() for item in text.split(",") if item.strip())


_PARSE = {"sip_port": _int, "dtmf_port": _int, "redis_port": _int, "ng_port": _int,
          "redis_timeout_ms": _int, "rtpe_redis_db": _int_or_off,
          "children": _int, "rtp_ports": _port_range, "aliases": _list,
          "var": lambda _, text: Path(text), "sounds": lambda _, text: Path(text),
          "rpc_sock": lambda _, text: Path(text)}
_RENDER = {"rtp_ports": lambda ports: f"{ports[0]}-{ports[1]}", "aliases": ",".join,
           "rtpe_redis_db": lambda db: "off" if db is None else str(db)}
