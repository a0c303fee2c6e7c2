"""The adapters: Kamailio (KEMI routes, the Sip object, the UAC), Redis (the lean RESP
client, the per-call store, the provisioning store, lockout counters) and rtpengine (the ng
client, media commands, the sounds it plays)."""
