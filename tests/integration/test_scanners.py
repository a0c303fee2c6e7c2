"""A real scanner (SIPVicious, from 127.0.0.7 with an ordinary User-Agent: scanner.py)
against a tenant whose extensions all have passwords: svwar finds no extension, svcrack is
locked out before it reaches the right password, and the phone still registers."""
import subprocess
import sys
from pathlib import Path

import pytest

from calls import register
from harness import free_port, wait_for

import scanner

SCANNER = Path(__file__).parent / "scanner.py"
TENANT = "scan.test"
EXTENSIONS = {"100": "Tr0ub4dor", "101": "pw101", "150": "pw150"}
STRANGER = "127.0.0.7"


@pytest.fixture
def scan_tenant(pbx):
    pbx.store.tenant_add(TENANT)
    for ext, password in EXTENSIONS.items():
        pbx.store.ext_add(TENANT, ext, password)
    return pbx


def argv(pbx, tool, *args):
    return [sys.executable, str(SCANNER), tool, STRANGER, "-p", str(pbx.cfg.sip_port),
            "--domain", TENANT, *args, "127.0.0.1"]


def run(pbx, tool, *args, timeout=60):
    return subprocess.run(argv(pbx, tool, *args), capture_output=True, text=True,
                          timeout=timeout, cwd=pbx.workdir)


def start(pbx, tool, *args):
    return subprocess.Popen(argv(pbx, tool, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=pbx.workdir,
                            start_new_session=True)


def test_the_scanner_does_not_say_what_it_is():
    scanner.disguise()
    request = scanner.sample_request()
    assert f"User-Agent: {scanner.USER_AGENT}" in request and "friendly-scanner" not in request


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_finds_no_extension(scan_tenant, method):
    # --force: scan on even though the first probe (an unlikely name) was challenged.
    result = run(scan_tenant, "svwar", "-m", method, "-e", "90-160", "--force", "-v")
    output = result.stdout + result.stderr
    assert "Ok SIP device found" in output, output        # it did scan the proxy
    assert "found nothing" in output, output
    assert not any(ext in result.stdout for ext in EXTENSIONS), result.stdout
    assert scan_tenant.redis.keys("vpbx:loc:*") == []


def wordlist(pbx, wrong, right):
    path = Path(pbx.workdir) / "words.txt"
    path.write_text("".join(f"guess{i}\n" for i in range(wrong)) + right + "\n")
    return path


def test_svcrack_finds_the_password_when_nothing_locks(scan_tenant):
    # The control: with a limit the wordlist cannot reach, the scanner cracks the password,
    # so it is the lockout that stops it in the next test.
    scan_tenant.redis.hset("vpbx:auth_lockout", "failures", 1000)
    result = run(scan_tenant, "svcrack", "-u", "100", "-d", str(wordlist(scan_tenant, 15, "Tr0ub4dor")))
    assert "Tr0ub4dor" in result.stdout, result.stdout + result.stderr
    scan_tenant.calls.unbind(TENANT, "100")


def test_svcrack_is_locked_out_and_the_phone_still_registers(scan_tenant):
    pbx = scan_tenant
    contact = free_port()
    register(pbx, "100", contact, password="Tr0ub4dor", domain=TENANT).passed()
    phone = pbx.redis.hgetall(f"vpbx:loc:{TENANT}:100")
    limit = 10                                      # the default
    words = wordlist(pbx, limit + 5, "Tr0ub4dor")
    crack = start(pbx, "svcrack", "-u", "100", "-d", str(words), "-vv")
    try:
        # (>=: a guess in flight on another worker may be counted after the one that locked)
        wait_for(lambda: int(pbx.redis.get(f"vpbx:authfail:src:{STRANGER}") or 0) >= limit,
                 timeout=30, what="the scanner's source locked")
        # Locked, it gets 403 before any challenge: it cannot try another password however
        # long it goes on. Let it try for a while, then stop it.
        try:
            output, _ = crack.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            crack.kill()
            output, _ = crack.communicate()
    finally:
        if crack.poll() is None:
            crack.kill()
    tried = [line.rsplit("trying ", 1)[1] for line in output.splitlines() if "trying " in line]
    assert tried[:limit] == [f"guess{i}" for i in range(limit)], output
    assert "Tr0ub4dor" not in tried and "The password for" not in output
    assert int(pbx.redis.get(f"vpbx:authfail:src:{STRANGER}")) >= limit
    assert int(pbx.redis.get(f"vpbx:authfail:ext:100@{TENANT}")) >= limit
    assert pbx.redis.hgetall(f"vpbx:loc:{TENANT}:100") == phone
    # The phone (registered from 127.0.0.1) re-registers despite its extension's lock.
    register(pbx, "100", contact, password="Tr0ub4dor", domain=TENANT).passed()
    assert pbx.redis.hget(f"vpbx:loc:{TENANT}:100", "callid") != phone["callid"]
    pbx.calls.unbind(TENANT, "100")
