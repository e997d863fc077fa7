"""Cryptographic recipes of fedrisk, built only on `cryptography`, `hashlib` and TenSEAL.

Callers in ``node`` and ``coordinator`` use these recipes, never the primitives directly:

- :mod:`~fedrisk.crypto.canonical` — one byte encoding for everything that is hashed or signed;
- :mod:`~fedrisk.crypto.identity` — a node's Ed25519 + X25519 keys, stored and exported;
- :mod:`~fedrisk.crypto.envelope` — sealed envelopes: secrets for one recipient and purpose;
- :mod:`~fedrisk.crypto.kdf` and :mod:`~fedrisk.crypto.tokens` — keys per use, blind tokens;
- :mod:`~fedrisk.crypto.he` — TenSEAL contexts (BFV for counts, CKKS for money);
- :mod:`~fedrisk.crypto.merkle` and :mod:`~fedrisk.crypto.treehead` — the audit log's tree;
- :mod:`~fedrisk.crypto.pseudonym`, :mod:`~fedrisk.crypto.aead` — node-local desensitization.
"""
