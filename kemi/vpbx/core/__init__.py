"""The pure core: the call model, the transfer state machine and its planner, feature-code
typing, routing and registration decisions, REFER and SDP text, settings, provisioning rules,
abuse-limit and lockout arithmetic, bencode. No I/O: no KSR, Redis, sockets, processes or
clock (tests/unit/test_layers.py keeps it so)."""
