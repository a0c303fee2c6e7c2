"""The engine: runs the core over the ports it is given (the per-call store, rtpengine calls,
the proxy's own SIP requests) — transfers (transfers.py: plan, commit, act) and feature
codes (codes.py). It imports the core only; wiring.py gives it the adapters."""
