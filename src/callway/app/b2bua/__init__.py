"""The B2BUA: call legs and channels (asyncio shell over the sans-I/O SIP core)."""
