"""SIPp scenario text for typing keys with SIP INFO, one request per key press (the tests'
parties/caller_info.xml and the soak's bench/soak_caller.xml). No test fixtures here:
bench/soak.py imports it too."""

INFO = """  <send>
    <![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[call_number]-info{n};rport
From: <sip:[$from_user]@[$from_domain]>;tag=[pid]c[call_number]
[last_To:]
Call-ID: [call_id]
[routes]
CSeq: {cseq} INFO
Max-Forwards: 70
Content-Type: {ctype}
Content-Length: [len]

{body}
    ]]>
  </send>
  <recv response="{expect}" />
"""
GAP = """  <pause milliseconds="{gap}" />
"""
RELAY = "application/dtmf-relay"


def info_body(ctype, key):
    return f"Signal={key}\r\nDuration=160" if ctype == RELAY else key
