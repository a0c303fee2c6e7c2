"""Start, stop and inspect the daemons of one vpbx instance (Redis, rtpengine, Kamailio).

Each daemon runs in its own process group; its group id is kept in
VAR/run/NAME.pid so that `down` stops exactly what `up` started, workers included.
All addresses and ports come from environment variables (config.py: Config.from_env).
"""
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import redis
from redis import Redis

from vpbx import config
from vpbx.adapters.rtpengine.ngclient import NgClient, NgError

ROOT = config.ROOT


class Config(config.Config):
    """The instance's configuration (config.Config: the VPBX_* environment) with the tools'
    clients of its Redis and rtpengine."""

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=2)

    def ng(self) -> NgClient:
        return NgClient(self.rtpe_host, self.rtpe_port)

    def rtpe_redis(self) -> Redis:     # (in this class, `redis` is the method above)
        """rtpengine's own Redis database (its sessions), beside the proxy's."""
        if self.rtpe_redis_db is None:
            raise ValueError("VPBX_RTPE_REDIS_DB is off: rtpengine keeps no sessions")
        u = urlparse(self.redis_url)
        return redis.Redis(host=u.hostname or "127.0.0.1", port=u.port or 6379, db=self.rtpe_redis_db,
                           username=u.username or None, password=u.password or None,
                           decode_responses=True, socket_timeout=2)


class StackError(RuntimeError):
    pass


AUTH_SECRET_KEY = "vpbx:auth_secret"


def auth_secret(cfg: Config) -> str:
    """The secret Kamailio's auth module makes its nonces with. Every node must have the
    same one (a nonce is then genuine on every node): VPBX_AUTH_SECRET (checked by
    config.Config), else the one kept in Redis, made by the first node that starts."""
    if cfg.auth_secret:
        return cfg.auth_secret
    r = cfg.redis()
    r.set(AUTH_SECRET_KEY, secrets.token_hex(32), nx=True)
    return r.get(AUTH_SECRET_KEY)


def _dirs(cfg):
    for sub in ("run", "log", "redis", "run/kamailio"):
        (cfg.var / sub).mkdir(parents=True, exist_ok=True)
    cfg.rpc_sock.parent.mkdir(parents=True, exist_ok=True)


# A daemon: name, argv, extra environment, readiness check (true when it answers).
Daemon = tuple[str, list[str], dict[str, str], Callable[[], object]]


def daemons(cfg: Config) -> list[Daemon]:
    """(name, argv, extra environment, readiness check) in start order."""
    run = cfg.var / "run"
    items: list[Daemon] = []
    if cfg.private_redis_port:
        items.append(("redis", [
            "redis-server", "--port", str(cfg.private_redis_port), "--bind", "127.0.0.1",
            "--dir", str(cfg.var / "redis"), "--daemonize", "no", "--save", "60 1",
            "--appendonly", "no", "--logfile", ""], {}, lambda: cfg.redis().ping()))
    if cfg.private_rtpe:
        items.append(("rtpengine", [
            "rtpengine", f"--config-file={_rtpengine_conf(cfg)}",
            f"--interface={cfg.listen}", f"--listen-ng={cfg.rtpe}",
            f"--port-min={cfg.rtp_ports[0]}", f"--port-max={cfg.rtp_ports[1]}",
            f"--dtmf-log-dest={cfg.dtmf_socket}",
            f"--pidfile={run / 'rtpengine.daemon.pid'}"], {}, lambda: cfg.ng().ping()))
    items.append(("kamailio", [
        "kamailio", "-f", str(ROOT / "kamailio-cfg" / "kamailio.cfg"), "-DD", "-E",
        "-Y", str(run / "kamailio"), "-m", "128", "-M", "16",
        "-l", f"udp:{cfg.host}:{cfg.sip_port}", "-l", f"tcp:{cfg.host}:{cfg.sip_port}",
        "-l", f"udp:{cfg.dtmf_socket}",
        "-A", f'VPBX_KEMI="{ROOT / "kemi" / "vpbx_kemi.py"}"',
        "-A", f'CTL_SOCK="unix:{run / "kamailio_ctl"}"',
        "-A", f'RPC_SOCK="{cfg.rpc_sock}"',
        "-A", f'RTPE_SOCK="udp:{cfg.rtpe}"',
        "-A", f"CHILDREN={cfg.children}",
        # Only rtpengine may report digits, and only to the DTMF socket (kamailio.cfg, nosip).
        "-A", f'DTMF_SOCKET_IP="{cfg.control}"', "-A", f"DTMF_SOCKET_PORT={cfg.dtmf_port}",
        "-A", f'RTPE_IP="{cfg.rtpe_host}"',
        *(f"--alias={alias}" for alias in cfg.aliases),
    ], cfg.to_env(),        # the proxy reads the same configuration (config.Config.from_env)
        lambda: sip_options(cfg, "udp") and sip_options(cfg, "tcp")))
    return items


def _rtpengine_conf(cfg):
    return cfg.var / "run" / "rtpengine.conf"


def write_rtpengine_conf(cfg: Config) -> None:
    """rtpengine/rtpengine.conf plus where this instance's rtpengine keeps its sessions:
    the proxy's Redis, database VPBX_RTPE_REDIS_DB. In a file of the owner's only, not on
    the command line, which every local user can read: the URL may hold a password.
    VPBX_RTPE_REDIS_DB=off: rtpengine keeps no sessions."""
    u = urlparse(cfg.redis_url)
    if cfg.rtpe_redis_db is not None and u.username and u.username != "default":
        # rtpengine 10.5 sends AUTH with a password only, as the default user.
        raise StackError("rtpengine cannot log in to Redis as a user other than 'default': "
                         "give VPBX_REDIS_URL a password only (redis://:PASSWORD@HOST:PORT/DB)")
    password = f"{u.password}@" if u.password else ""
    host = f"[{u.hostname}]" if ":" in (u.hostname or "") else (u.hostname or "127.0.0.1")
    text = (ROOT / "rtpengine" / "rtpengine.conf").read_text()
    if cfg.rtpe_redis_db is not None:
        text += (f"\n# Written by vpbx's stack for this instance.\n"
                 f"redis = {password}{host}:{u.port or 6379}/{cfg.rtpe_redis_db}\n")
    path = _rtpengine_conf(cfg)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _pidfile(cfg, name):
    return cfg.var / "run" / f"{name}.pid"


def group_pids(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """The live (non-zombie) processes of a process group: (pid, /proc/PID/stat fields after
    the command name; fields[0] is the state, fields[2] the group)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            yield int(entry), fields


def _group_alive(pgid):
    return any(group_pids(pgid))


def stop_group(pgid: int, timeout: float = 10.0) -> str | None:
    """SIGTERM a whole process group, SIGKILL what outlives the timeout.
    -> "stopped", "killed", or None when nothing of it was running."""
    if not _group_alive(pgid):
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _group_alive(pgid):
            break
    return "stopped" if sig == signal.SIGTERM else "killed"


def running(cfg: Config) -> dict[str, int]:
    """{name: pgid} of this instance's daemons that are alive."""
    alive = {}
    for name, *_ in daemons(cfg):
        try:
            pgid = int(_pidfile(cfg, name).read_text())
        except (OSError, ValueError):
            continue
        if _group_alive(pgid):
            alive[name] = pgid
    return alive


def up(cfg: Config, timeout: float = 20.0, say: Callable[[str], object] = print) -> None:
    _dirs(cfg)
    already = running(cfg)
    for name, argv, env, ready in daemons(cfg):
        if name in already:
            say(f"{name}: already running (process group {already[name]})")
            continue
        if name == "kamailio":      # after Redis has started
            secret = auth_secret(cfg)   # for digest nonces (-A) and the Python routing (env)
            argv = [*argv, "-A", f'AUTH_SECRET="{secret}"']
            env = {**env, config.env_name("auth_secret"): secret}
        if name == "rtpengine":
            write_rtpengine_conf(cfg)
        log = cfg.var / "log" / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **env}, start_new_session=True, cwd=cfg.var)
        _pidfile(cfg, name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not _ready(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {proc.returncode}" if proc.poll() is not None
                       else f"not ready after {timeout:.0f} s")
                down(cfg, say=lambda _: None)
                raise StackError(f"{name} {why}; last lines of {log}:\n{_tail(log)}")
            time.sleep(0.1)
        say(f"{name}: started (process group {proc.pid}), log {log}")


def _ready(check):
    try:
        return bool(check())
    except (OSError, NgError, redis.RedisError):
        return False


def _tail(path, lines=15):
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def down(cfg: Config, timeout: float = 10.0, say: Callable[[str], object] = print) -> None:
    """Stop this instance's daemons in reverse start order; SIGKILL whatever outlives the timeout."""
    for name, *_ in reversed(daemons(cfg)):
        pidfile = _pidfile(cfg, name)
        try:
            pgid = int(pidfile.read_text())
        except (OSError, ValueError):
            continue
        outcome = stop_group(pgid, timeout)
        if outcome == "killed":
            say(f"{name}: killed (did not stop within {timeout:.0f} s)")
        elif outcome:
            say(f"{name}: stopped")
        _reap(pgid)
        pidfile.unlink(missing_ok=True)


def _reap(pid):
    """Collect the exit status when this process started the daemon (no zombie left)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def sip_options(cfg: Config, transport: str, timeout: float = 1.0) -> bool:
    """Send OPTIONS to the proxy; True when it answers 200."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in cfg.listen else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        sock.connect((cfg.listen, cfg.sip_port))
        host, port = sock.getsockname()[:2]
        local = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        branch = "z9hG4bK" + uuid.uuid4().hex
        request = (
            f"OPTIONS sip:{cfg.host}:{cfg.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport.upper()} {local};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{cfg.host}:{cfg.sip_port}>\r\nCall-ID: {uuid.uuid4().hex}\r\n"
            f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.send(request.encode())
        return sock.recv(4096).startswith(b"SIP/2.0 200")
