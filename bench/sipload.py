"""SIPp load against a private vpbx stack: the pieces `make bench` (bench/run.py) and
`make soak` (bench/soak.py) share. The importer puts kemi/ and tests/ on sys.path."""
import socket
import subprocess
import uuid
from pathlib import Path

from ports import free_port
from vpbx.tooling import stack

BENCH = Path(__file__).resolve().parent


class Processes:
    """Everything a run starts besides the vpbx stack, for cleanup in one place."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, cwd):
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:     # once reaped, its PID may belong to someone else
                stack.stop_group(proc.pid)
                proc.wait()


def private_config(work: Path, rtp_ports: str, children: int,
                   extra: dict[str, str] | None = None) -> stack.Config:
    """A vpbx instance of its own under WORK, on ports free now (`extra`: more VPBX_*)."""
    return stack.Config.from_env({
        "VPBX_VAR": str(work / "vpbx"), "VPBX_SIP_PORT": str(free_port()),
        "VPBX_DTMF_PORT": str(free_port()), "VPBX_REDIS_PORT": str(free_port()),
        "VPBX_RTPE_PORT": str(free_port()),
        "VPBX_RTP_PORTS": rtp_ports, "VPBX_CHILDREN": str(children), **(extra or {})})


def register(port, tenant, user, contact_port):
    """REGISTER user@tenant (an open extension: no auth) with a Contact at contact_port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))
        host, local = sock.getsockname()
        sock.send((
            f"REGISTER sip:{tenant} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{tenant}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{user}@{tenant}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{contact_port}>\r\nExpires: 3600\r\n"
            f"Content-Length: 0\r\n\r\n").encode())
        reply = sock.recv(4096).decode(errors="replace")
    if not reply.startswith("SIP/2.0 200"):
        raise RuntimeError(f"REGISTER {user} on port {port}: {reply.splitlines()[0]}")


def sipp(procs, work, name, scenario, *args, control_port=None):
    """Start SIPp with a scenario (a path, or a name of bench/); its statistics go to
    WORK/NAME.csv, its unexpected messages to WORK/NAME.err."""
    path = scenario if isinstance(scenario, Path) else BENCH / scenario
    argv = ["sipp", "-sf", path, "-i", "127.0.0.1", "-cp", control_port or free_port(),
            "-mp", free_port(4), "-nostdin", "-trace_stat", "-stf", work / f"{name}.csv",
            "-trace_err", "-error_file", work / f"{name}.err", *args]
    return procs.start(argv, work / f"{name}.log", work)


def sipp_stats(work, name):
    """The cumulative counters of the last line of SIPp's statistics file (written at exit)."""
    try:
        head, *_, last = (work / f"{name}.csv").read_text().splitlines()
    except (OSError, ValueError):
        return {}
    return {k: int(v) for k, v in zip(head.split(";"), last.split(";"))
            if k.endswith("(C)") and v.strip().isdigit()}


def sipp_successes(work, name):
    """Successful calls, from SIPp's statistics file."""
    return sipp_stats(work, name).get("SuccessfulCall(C)", 0)


def quit_sipp(control_port):
    """Ask a SIPp to finish its calls in progress and exit (the `q` key, by its control socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"q", ("127.0.0.1", control_port))


def wait(proc, timeout):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stack.stop_group(proc.pid)
        return proc.wait()
