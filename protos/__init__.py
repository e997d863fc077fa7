"""Wire contracts (.proto) and their generated stubs; regenerate with protos/generate.py."""
