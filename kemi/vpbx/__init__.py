"""vpbx: transfer feature of a hosted PBX on Kamailio (KEMI), rtpengine and Redis.

Pure core (no KSR, Redis or socket imports): settings, provisioning rules,
routing decisions, SIP text helpers, bencode.
Adapters: store (Redis), ngclient (rtpengine ng), proxy (Kamailio KEMI glue).
Tooling: stack (start/stop the daemons), cli (scripts/vpbx).
"""
