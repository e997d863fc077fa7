"""Cryptographic recipes of fedrisk, built only on `cryptography` (and TenSEAL later).

Callers in ``node`` and ``coordinator`` use these recipes, never the primitives directly.
"""
