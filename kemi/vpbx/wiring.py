"""The one place where the proxy's objects are built, each given its dependencies: Kamailio
calls build() once when it loads vpbx (before it forks its workers: nothing connects here,
each process connects to Redis on its first command)."""
import os
import secrets

from vpbx.adapters.redis import resp
from vpbx.adapters.kamailio.auth import Auth
from vpbx.adapters.kamailio.backlog import Backlog
from vpbx.config import Config
from vpbx.adapters.kamailio.dialogs import Dialogs
from vpbx.adapters.kamailio.digits import Digits
from vpbx.engine.transfers import Engine
from vpbx.adapters.kamailio.guard import Guard
from vpbx.adapters.kamailio.invites import Invites
from vpbx.adapters.kamailio.sip import Sip, install_log
from vpbx.adapters.kamailio.legs import Legs
from vpbx.adapters.redis.lockstore import LockStore
from vpbx.adapters.rtpengine.media import Media
from vpbx.adapters.rtpengine.ngclient import NgClient
from vpbx.adapters.kamailio.proxy import Proxy
from vpbx.adapters.kamailio.refers import Refers
from vpbx.core.route_mark import RouteMark
from vpbx.adapters.kamailio.registrar import Registrar
from vpbx.adapters.kamailio.senders import Senders
from vpbx.adapters.rtpengine.sounds import Sounds
from vpbx.adapters.redis.store import Store
from vpbx.adapters.kamailio.orphans import Orphans
from vpbx.adapters.kamailio.uac import Uac


def build(environ=os.environ):
    """The proxy, from the configuration scripts/vpbx passes Kamailio (the VPBX_* environment)."""
    install_log()
    cfg = Config.from_env(environ)
    sip = Sip()
    fast = resp.Client.from_url(cfg.redis_url, timeout=cfg.redis_timeout_ms / 1000)
    # rtpengine's sessions, in the same Redis (only for the rtpengine the stack starts).
    store = Store(fast, cfg.rtpe_redis_db if cfg.private_rtpe else None)
    ng = NgClient(cfg.rtpe_host, cfg.rtpe_port)     # what Kamailio's rtpengine module lacks
    # The secret the nodes share (scripts/vpbx passes it); a random one, without it, makes
    # the marks of calls set up before a restart unknown.
    mark = RouteMark(cfg.auth_secret or secrets.token_hex(32))
    uac = Uac(sip, str(cfg.rpc_sock), mark)
    backlog = Backlog(sip, ng)          # what waits for Redis or rtpengine to come back
    engine = Engine(store, lambda callid: Media(ng, callid, backlog.media_lost), uac,
                    Sounds(str(cfg.sounds)))
    guard = Guard(sip)
    auth = Auth(LockStore(fast), sip)
    senders = Senders(store, sip)
    digits = Digits(store, engine, ng, sip, senders)
    legs = Legs(store, engine, sip, uac, senders, digits, mark, backlog)
    refers = Refers(store, engine, sip, uac, senders)
    return Proxy(sip, store, engine, guard, (cfg.control, cfg.dtmf_port),
                 registrar=Registrar(store, sip, guard, auth),
                 invites=Invites(store, ng, sip, guard, auth, mark, backlog),
                 dialogs=Dialogs(store, sip, senders, refers, legs, digits, mark, ng, backlog),
                 legs=legs, digits=digits, orphans=Orphans(store, ng, sip), backlog=backlog)
