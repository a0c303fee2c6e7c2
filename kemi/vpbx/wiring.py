"""The one place where the proxy's objects are built, each given its dependencies: Kamailio
calls build() once when it loads vpbx (before it forks its workers: nothing connects here,
each process connects to Redis on its first command)."""
import os

from . import resp
from .auth import Auth
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


def _hostport(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def build(environ=os.environ):
    """The proxy, from the settings scripts/vpbx passes Kamailio in its environment."""
    install_log()
    sip = Sip()
    fast = resp.Client.from_url(environ.get("VPBX_REDIS_URL", "redis://127.0.0.1:16379/0"))
    store = Store(None, fast)
    ng = NgClient(*_hostport(environ.get("VPBX_RTPE_NG", "127.0.0.1:2223")))
    uac = Uac(sip, environ.get("VPBX_RPC_SOCK", "/run/kamailio/kamailio_rpc.sock"))
    engine = Engine(store, lambda callid: Media(ng, callid), uac,
                    Sounds(environ.get("VPBX_SOUNDS", "/tmp/vpbx-sounds")))
    guard = Guard(sip)
    auth = Auth(LockStore(fast), sip)
    senders = Senders(store, sip)
    digits = Digits(store, engine, ng, sip, senders)
    legs = Legs(store, engine, sip, uac, senders, digits)
    refers = Refers(store, engine, sip, uac, senders)
    return Proxy(sip, store, engine, guard, _hostport(environ.get("VPBX_DTMF_SOCKET", "127.0.0.1:5070")),
                 registrar=Registrar(store, sip, guard, auth),
                 invites=Invites(store, ng, sip, guard, auth),
                 dialogs=Dialogs(store, sip, senders, refers, legs, digits),
                 legs=legs, digits=digits)
