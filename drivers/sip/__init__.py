"""Sans-I/O SIP core for the GB/T 28181 body cams: bytes in, typed messages out.

No sockets and no clock here (time is an argument): ``message`` parses and builds requests and
responses, ``responses`` answers a request per RFC 3261 §8.2.6, ``transactions`` recognises
retransmissions and schedules the platform's own retransmissions, ``digest`` authenticates
REGISTER. Lenient on what devices send, bounded on every size; bad input raises
:class:`~drivers.sip.errors.SipParseError` with a short machine reason.
"""
