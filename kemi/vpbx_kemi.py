"""Entry file loaded by Kamailio's app_python3 (modparam "load").

This directory is on sys.path, so the vpbx package imports directly.
Kamailio embeds Debian's /usr/bin/python3: only Debian packages (python3-redis)
and this tree are importable.
"""
from vpbx import wiring


def mod_init():
    return wiring.build()
