"""GB/T 28181 (body cams): the pure MANSCDP core. XML safety, message parsing and building,
Catalog reassembly, device-id decoding and the online rule; no sockets, no clock. The SIP
core lives in ``drivers/sip``; the transport joins them."""
