"""scripts/vpbx: control the stack and provision tenants (configuration is Redis keys)."""
import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

import redis

from vpbx.core import limits, lockout, settings
from vpbx.adapters.redis import lockstore
from vpbx.tooling import stack
from vpbx.adapters.rtpengine.ngclient import NgError
from vpbx.adapters.redis.provisioning_store import ProvisioningStore

DEMO_TENANT = "demo.vpbx"
DEMO_EXTENSIONS = {"100": "pass100", "101": "pass101", "102": "pass102"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vpbx", description="vpbx PBX transfer stack")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start Redis (private), rtpengine and Kamailio in the background")
    sub.add_parser("down", help="stop what 'up' started")
    sub.add_parser("status", help="what runs, and the calls in progress")
    sub.add_parser("run", help="up + demo tenant, in the foreground until Ctrl-C")
    sub.add_parser("demo", help=f"provision the demo tenant {DEMO_TENANT} (idempotent)")

    tenant = sub.add_parser("tenant", help="tenants (a tenant is a SIP domain)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    tenant.add_parser("add").add_argument("domain")
    tenant.add_parser("del").add_argument("domain")
    tenant.add_parser("list")

    ext = sub.add_parser("ext", help="extensions of a tenant").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = ext.add_parser("add")
    add.add_argument("domain")
    add.add_argument("ext")
    add.add_argument("--password", help="require digest auth with this password (default: open)")
    delete = ext.add_parser("del")
    delete.add_argument("domain")
    delete.add_argument("ext")
    ext.add_parser("list").add_argument("domain")

    trunk = sub.add_parser("trunk", help="peers trusted by source address").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = trunk.add_parser("add")
    add.add_argument("domain")
    add.add_argument("hostport", metavar="IP:PORT")
    add.add_argument("--outbound", action="store_true",
                     help="send the tenant's calls to non-extension numbers here")
    add.add_argument("--refer", choices=("terminate", "pass"), default="terminate",
                     help="a phone's REFER aimed at this trunk's party: the proxy transfers "
                          "itself (terminate, default) or relays the REFER (pass)")
    delete = trunk.add_parser("del")
    delete.add_argument("domain")
    delete.add_argument("hostport", metavar="IP:PORT")
    trunk.add_parser("list").add_argument("domain", nargs="?")

    setting = sub.add_parser("set", help="set a tenant setting: " + ", ".join(settings.SETTINGS))
    setting.add_argument("domain")
    setting.add_argument("key")
    setting.add_argument("value")
    sub.add_parser("show", help="a tenant's settings").add_argument("domain")

    lock = sub.add_parser("lock", help="failed-login lockout of sources and extensions").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    lock.add_parser("list", help="sources and extensions with failed logins, and the limits")
    clear = lock.add_parser("clear", help="forget failed logins: src IP | ext DOMAIN EXT | all")
    clear.add_argument("kind", choices=("src", "ext", "all"))
    clear.add_argument("subject", nargs="*", metavar="IP | DOMAIN EXT")
    limit = lock.add_parser("set", help="a limit: " + ", ".join(lockout.LIMITS))
    limit.add_argument("name")
    limit.add_argument("value")
    limits_cmd = sub.add_parser(
        "limits", help="requests a second from one source address, per kind (no arguments: "
                       "show them; KIND VALUE: set one, 0 = no limit)")
    limits_cmd.add_argument("kind", nargs="?", metavar="KIND", help=", ".join(limits.KINDS))
    limits_cmd.add_argument("value", nargs="?", metavar="VALUE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = stack.Config.from_env(os.environ)
        code = COMMANDS[args.command](cfg, args) or 0
        sys.stdout.flush()                  # a closed pipe shows here, not at exit
        return code
    except (ValueError, stack.StackError) as exc:
        print(f"vpbx: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except redis.ConnectionError as exc:
        print(f"vpbx: cannot reach Redis at {cfg.redis_url} ({exc}); is the stack up?", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader left (`vpbx status | head -1`): no traceback. stdout goes to /dev/null,
        # else Python's flush at exit fails again; 141 is what a tool SIGPIPE ends returns.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def cmd_up(cfg: stack.Config, args: argparse.Namespace) -> None:
    stack.up(cfg)
    print(f"vpbx: SIP on udp/tcp {cfg.host}:{cfg.sip_port}, Redis {cfg.redis_url}")


def cmd_down(cfg: stack.Config, args: argparse.Namespace) -> None:
    stack.down(cfg)


def cmd_status(cfg: stack.Config, args: argparse.Namespace) -> int:
    alive = stack.running(cfg)
    for name, *_ in stack.daemons(cfg):
        print(f"{name:10} {'running, process group ' + str(alive[name]) if name in alive else 'stopped'}")
    if "redis" in alive or not cfg.private_redis_port:
        try:
            store = ProvisioningStore(cfg.redis())
            print(f"tenants    {len(store.tenant_list())}\ncalls      {len(store.call_keys())} in Redis")
        except redis.RedisError as exc:
            print(f"redis      unreachable: {exc}")
    if "rtpengine" in alive:
        try:
            print(f"media      {len(cfg.ng().calls())} calls in rtpengine")
        except NgError as exc:
            print(f"media      rtpengine unreachable: {exc}")
    return 0 if len(alive) == len(stack.daemons(cfg)) else 3


def cmd_demo(cfg: stack.Config, args: argparse.Namespace) -> None:
    store = ProvisioningStore(cfg.redis())
    if DEMO_TENANT not in store.tenant_list():
        store.tenant_add(DEMO_TENANT)
    existing = {ext for ext, _ in store.ext_list(DEMO_TENANT)}
    for ext, password in DEMO_EXTENSIONS.items():
        if ext not in existing:
            store.ext_add(DEMO_TENANT, ext, password)
    store.setting_set(DEMO_TENANT, "pbx_transfer", "on")
    print(f"demo tenant {DEMO_TENANT}: extensions " +
          ", ".join(f"{e} (password {p})" for e, p in DEMO_EXTENSIONS.items()) + "; pbx_transfer on")


def cmd_run(cfg: stack.Config, args: argparse.Namespace) -> None:
    stack.up(cfg)
    try:
        cmd_demo(cfg, args)
        print(f"vpbx: running. Point softphones at {cfg.host}:{cfg.sip_port} (domain {DEMO_TENANT}). "
              "Ctrl-C stops.")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.down(cfg)


def cmd_tenant(cfg: stack.Config, args: argparse.Namespace) -> None:
    store = ProvisioningStore(cfg.redis())
    if args.action == "add":
        print(f"tenant {store.tenant_add(args.domain)} added")
    elif args.action == "del":
        store.tenant_del(args.domain)
        print(f"tenant {args.domain} deleted with its extensions and trunks")
    else:
        for domain in store.tenant_list():
            print(domain)


def cmd_ext(cfg: stack.Config, args: argparse.Namespace) -> None:
    store = ProvisioningStore(cfg.redis())
    if args.action == "add":
        store.ext_add(args.domain, args.ext, args.password)
        auth = "digest auth" if args.password else "open, no auth"
        print(f"extension {args.ext}@{args.domain} added ({auth})")
    elif args.action == "del":
        store.ext_del(args.domain, args.ext)
        print(f"extension {args.ext}@{args.domain} deleted")
    else:
        for ext, protected in store.ext_list(args.domain):
            print(f"{ext}\t{'password' if protected else 'open'}")


def cmd_trunk(cfg: stack.Config, args: argparse.Namespace) -> None:
    store = ProvisioningStore(cfg.redis())
    if args.action == "add":
        hostport = store.trunk_add(args.domain, args.hostport, args.outbound, args.refer)
        print(f"trunk {hostport} added to {args.domain}{' (outbound)' if args.outbound else ''}"
              f", REFER: {args.refer}")
    elif args.action == "del":
        store.trunk_del(args.domain, args.hostport)
        print(f"trunk {args.hostport} deleted from {args.domain}")
    else:
        for hostport, owner, outbound in store.trunk_list(args.domain):
            print(f"{hostport}\t{owner}{chr(9) + 'outbound' if outbound else ''}")


EMPTY = "''"         # how an empty setting is shown, and typed to clear it


def cmd_set(cfg: stack.Config, args: argparse.Namespace) -> None:
    text = ProvisioningStore(cfg.redis()).setting_set(args.domain, args.key, args.value)
    print(f"{args.domain}: {args.key} = {text or EMPTY}")


def cmd_show(cfg: stack.Config, args: argparse.Namespace) -> None:
    values, outbound = ProvisioningStore(cfg.redis()).tenant_show(args.domain)
    for name, value in values.items():
        print(f"{name} = {settings.render(value) or EMPTY}")
    print(f"outbound_trunk = {outbound or '-'}")


def cmd_lock(cfg: stack.Config, args: argparse.Namespace) -> None:
    r = cfg.redis()
    if args.action == "list":
        limits = lockstore.limits(r)
        print(f"limits: {limits.failures} failures within {limits.window} s lock for {limits.lock} s")
        for kind, subject, failures, left, locked in lockstore.subjects(r):
            print(f"{kind}\t{subject}\t{'locked' if locked else 'counting'}\t"
                  f"{failures} failures\t{left} s left")
    elif args.action == "set":
        print(f"lock {args.name} = {lockstore.set_limit(r, args.name, args.value)}")
    else:
        wanted = {"src": 1, "ext": 2, "all": 0}[args.kind]
        if len(args.subject) != wanted:
            usage = {"src": "src IP", "ext": "ext DOMAIN EXT", "all": "all"}[args.kind]
            raise ValueError(f"lock clear {usage}: {wanted} argument(s) after {args.kind!r}, "
                             f"not {len(args.subject)}")
        count = lockstore.clear(r, args.kind, tuple(args.subject))
        print(f"cleared {count} source(s) and extension(s)" if args.kind == "all" else
              f"cleared {args.kind} {' '.join(args.subject)}")
def cmd_limits(cfg: stack.Config, args: argparse.Namespace) -> None:
    store = ProvisioningStore(cfg.redis())
    if args.kind is not None:
        if args.value is None:
            raise ValueError("limits takes no argument (show) or KIND VALUE (set)")
        print(f"{args.kind} = {store.limit_set(args.kind, args.value)}")
        return
    for kind, rate in store.limits_show().items():
        print(f"{kind} = {rate}")


COMMANDS: dict[str, Callable[[stack.Config, argparse.Namespace], int | None]] = {
    "up": cmd_up, "down": cmd_down, "status": cmd_status, "run": cmd_run, "demo": cmd_demo,
    "tenant": cmd_tenant, "ext": cmd_ext, "trunk": cmd_trunk, "set": cmd_set, "show": cmd_show,
    "lock": cmd_lock,
    "limits": cmd_limits,
}
