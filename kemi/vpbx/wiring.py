"""The one place where the proxy's objects are built, each given its dependencies: Kamailio
calls build() once when it loads vpbx (before it forks its workers: nothing connects here,
each process connects to Redis on its first command)."""
import os

from . import resp
from .auth import Auth
from .config import Config
from .dialogs import Dialogs
from .digits import Digits
from .engine import Engine
from .guard import Guard
from .invites import Invites
from .kamailio import Sip, install_log
from .legs import Legs
from .lockstore import LockStore
from .media import Media
from .ngclient import NgClient
from .proxy import Proxy
from .refers import Refers
from .registrar import Registrar
from .senders import Senders
from .sounds import Sounds
from .store import Store
from .uac import Uac


def build(environ=os.environ):
    """The proxy, from the configuration scripts/vpbx passes Kamailio (the VPBX_* environment)."""
    install_log()
    cfg = Config.from_env(environ)
    sip = Sip()
    fast = resp.Client.from_url(cfg.redis_url)
    store = Store(fast)
    ng = NgClient(cfg.rtpe_host, cfg.rtpe_port)     # what Kamailio's rtpengine module lacks
    uac = Uac(sip, str(cfg.rpc_sock))
    engine = Engine(store, lambda callid: Media(ng, callid), uac, Sounds(str(cfg.sounds)))
    guard = Guard(sip)
    auth = Auth(LockStore(fast), sip)
    senders = Senders(store, sip)
    digits = Digits(store, engine, ng, sip, senders)
    legs = Legs(store, engine, sip, uac, senders, digits)
    refers = Refers(store, engine, sip, uac, senders)
    return Proxy(sip, store, engine, guard, (cfg.control, cfg.dtmf_port),
                 registrar=Registrar(store, sip, guard, auth),
                 invites=Invites(store, ng, sip, guard, auth),
                 dialogs=Dialogs(store, sip, senders, refers, legs, digits),
                 legs=legs, digits=digits)
