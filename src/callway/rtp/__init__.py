"""RTP/RTCP wire codecs, RFC 4733 events, G.711, latching and transcoding (sans-I/O)."""
