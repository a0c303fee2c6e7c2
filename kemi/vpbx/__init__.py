"""vpbx: transfer feature of a hosted PBX on Kamailio (KEMI), rtpengine and Redis.

Layers (docs/architecture.md): core/ (pure), engine/ (runs the core over ports),
adapters/ (kamailio, redis, rtpengine), tooling/ (stack, cli); config.py is read by the
proxy and the tooling, and wiring.py builds the proxy Kamailio runs.
"""
