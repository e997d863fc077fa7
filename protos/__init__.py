"""Wire contracts (.proto) and their generated stubs (later issues)."""
