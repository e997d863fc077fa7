"""Federation epochs: made by the key creator, sealed to trusted members only, kept at 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fedrisk.crypto import he
from fedrisk.crypto.identity import Identity
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.membership import MembershipError, accept_epoch, load, make_epoch


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NodeHome]:
    root = tmp_path_factory.mktemp("federation")
    made = {site: init_home(root / site, site) for site in ("H1", "P1", "P2")}
    for home in made.values():  # the operators exchange identities out of band
        for other in made.values():
            if other is not home:
                home.trust("federation_member", other.public_identity())
    return made


def _identity(home: NodeHome) -> Identity:
    return home.identity()


def test_trusted_members_accept_the_epoch_an_unknown_node_gets_nothing(
    homes: dict[str, NodeHome],
) -> None:
    creator = homes["H1"]
    stranger = Identity.generate("X9")
    enrolled = [h.public_identity() for h in homes.values()] + [stranger.public]
    new = make_epoch(creator, _identity(creator), "demo", 1, enrolled)
    assert stranger.public.fingerprint not in new.envelopes
    assert new.refused == (f"X9 ({stranger.public.fingerprint})",)
    assert len(new.envelopes) == 3
    assert he.is_public(he.load_context(new.public_context))  # all the coordinator holds
    for site, home in homes.items():
        fingerprint = home.public_identity().fingerprint
        membership = accept_epoch(
            home, _identity(home), new.membership.creator, "demo", 1, new.envelopes[fingerprint]
        )
        assert membership.secret == new.membership.secret, site
        assert not he.is_public(he.load_context(membership.he_context))
        saved = home.secrets / "federation" / "demo" / "epoch-1.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert load(home, "demo") == membership
        assert new.membership.secret not in new.envelopes[fingerprint]


def test_an_envelope_is_refused_by_another_node_for_another_epoch_or_untrusted_creator(
    homes: dict[str, NodeHome], tmp_path: Path
) -> None:
    creator, member = homes["H1"], homes["P1"]
    enrolled = [h.public_identity() for h in homes.values()]
    new = make_epoch(creator, _identity(creator), "demo", 2, enrolled)
    envelope = new.envelopes[member.public_identity().fingerprint]
    other = homes["P2"]
    with pytest.raises(MembershipError, match="addressed to node"):
        accept_epoch(other, _identity(other), new.membership.creator, "demo", 2, envelope)
    with pytest.raises(MembershipError, match="sealed for purpose"):
        accept_epoch(member, _identity(member), new.membership.creator, "demo", 3, envelope)
    outsider = init_home(tmp_path / "outsider", "H7")  # trusts nobody
    with pytest.raises(MembershipError, match="not a trusted federation member"):
        accept_epoch(outsider, outsider.identity(), new.membership.creator, "demo", 2, envelope)
    with pytest.raises(MembershipError, match="no epoch 9"):
        load(member, "demo", 9)
