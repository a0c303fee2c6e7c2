"""A private bare redis-server for the component tier (no Kamailio), started and stopped by
PID: on a free loopback port, or on a given one (a restart)."""
import shutil
import subprocess
import time

from ports import free_port

from vpbx.adapters.redis import resp

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def start(workdir, port=None):
    """-> (Popen, port) of a redis-server answering PING; a port taken meanwhile is retried
    (unless `port` is given: a restart on the same port)."""
    for _ in range(1 if port else 5):
        port = port or free_port()
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
             "--dir", str(workdir), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", str(workdir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            client = resp.Client("127.0.0.1", port, timeout=0.5)    # a new one: no wait after a refusal
            try:
                if client.pipeline(("PING",)) == ["PONG"]:
                    return proc, port
            except resp.RespError:
                time.sleep(0.02)
            finally:
                client.close()
        stop(proc)
    log = (workdir / "redis.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1; its log:\n{log}")


def stop(proc):
    """Stop the redis-server this fixture started, by its PID (proc), and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
