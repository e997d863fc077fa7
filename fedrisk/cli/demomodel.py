"""The demo's model owner: the key that signs the federation's model for every demo node.

A bureau's model owner keeps this key on their own machine; the demo keeps it in
WORKDIR/model-owner/ and reuses it on every run, so the nodes' trust survives a second run.
"""

from __future__ import annotations

from pathlib import Path

from fedrisk.crypto.identity import Identity

OWNER = "demo-model-owner"


def demo_owner(workdir: Path) -> Identity:
    """The demo's model owner (created once, then reused)."""
    folder = workdir / "model-owner"
    key = folder / f"{OWNER}.key"
    if key.is_file():
        return Identity.load(key)
    folder.mkdir(parents=True, exist_ok=True)
    owner = Identity.generate(OWNER)
    owner.save(key)
    return owner
