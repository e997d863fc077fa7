"""Node identities: 0600 files, passphrase protection, public keys that cannot be forged."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from fedrisk.crypto.identity import Identity, IdentityError, PublicIdentity


def test_saved_identity_is_private_and_loads_back(tmp_path: Path) -> None:
    identity = Identity.generate("H1")
    path = tmp_path / "identity.key"
    identity.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path)
    assert loaded.public == identity.public
    assert not Identity.is_protected(path)


def test_protected_identity_needs_its_passphrase(tmp_path: Path) -> None:
    identity = Identity.generate("H1")
    path = tmp_path / "identity.key"
    identity.save(path, passphrase=b"correct horse")
    assert Identity.is_protected(path)
    raw = path.read_bytes()
    assert identity.public.signing_key not in raw  # nothing in clear but the site id
    with pytest.raises(IdentityError, match="passphrase-protected"):
        Identity.load(path)
    with pytest.raises(IdentityError, match="wrong passphrase"):
        Identity.load(path, b"wrong")
    assert Identity.load(path, b"correct horse").public == identity.public


def test_save_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    Identity.generate("H1").save(path)
    with pytest.raises(FileExistsError):
        Identity.generate("H1").save(path)


def test_public_identity_round_trips_and_rejects_a_swapped_key() -> None:
    mine, theirs = Identity.generate("H1"), Identity.generate("H2")
    exported = json.loads(json.dumps(mine.public.to_json()))
    assert PublicIdentity.from_json(exported) == mine.public
    swapped = {**exported, "receiving_key": theirs.public.to_json()["receiving_key"]}
    with pytest.raises(IdentityError, match="binding signature"):
        PublicIdentity.from_json(swapped)
    renamed = dataclasses.replace(mine.public, site_id="H2")
    with pytest.raises(IdentityError):
        renamed.check()


def test_fingerprints_differ_between_nodes() -> None:
    assert Identity.generate("H1").public.fingerprint != Identity.generate("H1").public.fingerprint
