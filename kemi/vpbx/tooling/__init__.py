"""Tooling outside Kamailio: starting and stopping the stack, the vpbx command line."""
