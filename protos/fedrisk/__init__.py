"""Wire contracts of fedrisk, version 1 (the stubs are generated: protos/generate.py)."""
