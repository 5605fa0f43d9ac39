"""Operations: SIP tracing (pcap, HEP v3), alert rules and structured logs.

These are the tools an operator reaches for when something goes wrong:

- :mod:`callway.ops.pcap` encodes SIP messages as IP/UDP/TCP packets in
  classic libpcap files that Wireshark and ``tshark`` decode;
- :mod:`callway.ops.hep` encodes HEP v3 (EEP) packets for a Homer collector;
- :mod:`callway.ops.tracer` is the :class:`SipTracer` the SIP stack's trace
  hook calls (global rotated capture, per-call captures, HEP export);
- :mod:`callway.ops.ladder` draws a call's SIP ladder from a pcap (``callway trace``);
- :mod:`callway.ops.config` turns the ``[trace]`` settings into a tracer;
- :mod:`callway.ops.alerts` is the sans-I/O rule engine for registration drops
  and call failure ratios, :mod:`callway.app.ops_alerts` their webhook bodies;
- :mod:`callway.ops.logs` sets up plain or JSON-lines logging with the Call-ID.
"""
