"""Kamailio: sip.py is the one module that uses KSR; the routes get a Sip object."""
