"""callway."""
