"""callway: a complete call-center VoIP system (PBX, SIP load balancer, HA, NAT, TLS/SRTP)."""

__version__ = "0.1.0"
