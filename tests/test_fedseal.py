"""Payloads sealed for the federation: the relay verifies the sender, only members decrypt."""

from __future__ import annotations

import os

import pytest

from fedrisk.crypto.fedseal import open_from_federation, seal_for_federation
from fedrisk.crypto.identity import Identity
from fedrisk.crypto.signed import ReplayGuard, SignedMessageError, verify_message

SECRET = os.urandom(32)
NODE = Identity.generate("H1")
CONTEXT = "federation=demo epoch=1 run=r1 round=1"
TREES = b"Tree=0\nnum_leaves=31\nsplit_feature=4 7\nthreshold=1280.5 3.25\n"


def test_members_open_it_the_relay_only_verifies_it() -> None:
    sealed = seal_for_federation(SECRET, NODE, "trees", CONTEXT, TREES)
    assert b"threshold" not in sealed and b"1280.5" not in sealed
    relayed = verify_message(sealed, NODE.public, "trees", CONTEXT, ReplayGuard())  # no secret
    assert TREES not in relayed.payload
    opened = open_from_federation(SECRET, sealed, NODE.public, "trees", CONTEXT, ReplayGuard())
    assert opened.payload == TREES


def test_another_epochs_key_does_not_open_it() -> None:
    sealed = seal_for_federation(SECRET, NODE, "trees", CONTEXT, TREES)
    with pytest.raises(SignedMessageError, match="federation key"):
        open_from_federation(os.urandom(32), sealed, NODE.public, "trees", CONTEXT, ReplayGuard())


def test_a_payload_of_another_round_is_refused() -> None:
    sealed = seal_for_federation(SECRET, NODE, "trees", CONTEXT, TREES)
    with pytest.raises(SignedMessageError, match="replayed"):
        open_from_federation(SECRET, sealed, NODE.public, "trees", CONTEXT + "2", ReplayGuard())
