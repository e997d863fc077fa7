"""A node's home folder: its configuration, secrets, analytic store, identity vault and rejects.

Layout of ``HOME``::

    config.toml        site id, knowledge base and rule pack paths (see docs/operator.md)
    identity.json      the node's public identity (Ed25519 + X25519 public keys), to share
    policy.toml        the access policy (see docs/audit.md), a copy of the default at init
    secrets/           0700; pseudonym.key and vault.key (32 random bytes each) and
                       identity.key (the node's private keys, optionally passphrase-sealed), 0600
    store.duckdb       the analytic store: desensitized claims only
    vault.sqlite       0600; the identity vault: identifiers encrypted under vault.key
    rejects/           one JSON Lines file per ingested batch
    audit/             0700; the audit log, its signed tree heads (see node/auditlog.py)
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from fedrisk.crypto.identity import Identity, IdentityError, PublicIdentity
from fedrisk.models.errors import NodeHomeError
from fedrisk.models.kb import KnowledgeBase, load_kb
from fedrisk.models.rules.pack import RulePack, load_rule_pack
from fedrisk.node.policy import Policy, default_policy_text, load_policy

CONFIG_FILE = "config.toml"
SECRET_BYTES = 32
SECRET_NAMES = ("pseudonym", "vault")
_IDENTITY_FIELDS = ("site_id", "signing_key", "receiving_key", "binding", "fingerprint")
TrustKind = Literal["model_owner", "federation_member"]
_SITE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class NodeHome:
    """Paths and settings of one initialised node home."""

    root: Path
    site_id: str
    kb_path: Path | None
    rules_path: Path | None = None

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def store(self) -> Path:
        return self.root / "store.duckdb"

    @property
    def vault(self) -> Path:
        return self.root / "vault.sqlite"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def identity_file(self) -> Path:
        return self.secrets / "identity.key"

    @property
    def public_identity_file(self) -> Path:
        return self.root / "identity.json"

    @property
    def policy_file(self) -> Path:
        return self.root / "policy.toml"

    def identity(self, passphrase: bytes | None = None) -> Identity:
        """The node's private keys (the passphrase is needed if they are protected)."""
        try:
            return Identity.load(self.identity_file, passphrase)
        except IdentityError as exc:
            raise NodeHomeError(str(exc)) from None

    def identity_is_protected(self) -> bool:
        return Identity.is_protected(self.identity_file)

    def public_identity(self) -> PublicIdentity:
        """The node's public identity, as exported at init."""
        try:
            data = json.loads(self.public_identity_file.read_text(encoding="utf-8"))
            return PublicIdentity.from_json(data)
        except (OSError, ValueError, IdentityError) as exc:
            raise NodeHomeError(f"{self.public_identity_file}: {exc}") from None

    def trusted(self, kind: TrustKind) -> dict[str, PublicIdentity]:
        """The public identities this node trusts as ``kind`` (``model_owner``: whose bundles it
        accepts; ``federation_member``: whom it enrolls with and takes sealed keys and trees
        from), by key fingerprint, as listed in config.toml."""
        try:
            data = tomllib.loads(self.config.read_text(encoding="utf-8"))
            entries = data.get("trust", {}).get(kind, [])
            identities = [PublicIdentity.from_json(dict(entry)) for entry in entries]
        except (tomllib.TOMLDecodeError, IdentityError, TypeError, AttributeError) as exc:
            raise NodeHomeError(f"{self.config}: malformed [[trust.{kind}]] ({exc})") from None
        return {identity.fingerprint: identity for identity in identities}

    def trust(self, kind: TrustKind, identity: PublicIdentity) -> bool:
        """Add a public identity to config.toml as ``kind``; False if it was there already."""
        identity.check()
        if identity.fingerprint in self.trusted(kind):
            return False
        fields = identity.to_json()
        lines = ["", f"[[trust.{kind}]]"]
        lines += [f"{key} = {json.dumps(fields[key])}" for key in _IDENTITY_FIELDS]
        with self.config.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return True

    def trusted_owners(self) -> dict[str, PublicIdentity]:
        """The model owners whose bundles this node accepts, by key fingerprint."""
        return self.trusted("model_owner")

    def trust_owner(self, owner: PublicIdentity) -> bool:
        """Trust a model owner's public key; False if it was trusted already."""
        return self.trust("model_owner", owner)

    def policy(self) -> Policy:
        """The access policy this node enforces."""
        return load_policy(self.policy_file)

    def secret(self, name: str) -> bytes:
        """One of the node's secret keys (``pseudonym`` or ``vault``)."""
        path = self.secrets / f"{name}.key"
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            raise NodeHomeError(
                f"{path}: secret key is missing; the node home is damaged"
            ) from None
        if len(key) != SECRET_BYTES:
            raise NodeHomeError(f"{path}: secret key has {len(key)} bytes, expected {SECRET_BYTES}")
        return key

    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge base this node is configured with."""
        return load_kb(self.kb_path)

    def rule_pack(self) -> RulePack:
        """The rule pack this node is configured with."""
        return load_rule_pack(self.rules_path)


def init_home(
    root: Path,
    site_id: str,
    kb_path: Path | None = None,
    rules_path: Path | None = None,
    passphrase: bytes | None = None,
) -> NodeHome:
    """Create a node home: configuration, fresh secrets and identity, the default access
    policy, an empty store, vault and audit log.

    Refuses a folder that already holds a node configuration, so secrets are never replaced
    (replacing them would orphan every pseudonym and vault entry).
    """
    if not _SITE_ID.match(site_id):
        raise NodeHomeError(f"site id {site_id!r} must be 1–64 letters, digits, '_' or '-'")
    if (root / CONFIG_FILE).exists():
        raise NodeHomeError(f"{root} is already a node home (it has {CONFIG_FILE})")
    kb = load_kb(kb_path)  # refuse a broken knowledge base or pack before creating anything
    load_rule_pack(rules_path)
    root.mkdir(parents=True, exist_ok=True)
    home = NodeHome(
        root.resolve(),
        site_id,
        kb_path.resolve() if kb_path else None,
        rules_path.resolve() if rules_path else None,
    )
    home.secrets.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home.secrets, 0o700)
    for name in SECRET_NAMES:
        _write_private(home.secrets / f"{name}.key", os.urandom(SECRET_BYTES))
    identity = Identity.generate(site_id)
    identity.save(home.identity_file, passphrase)
    home.public_identity_file.write_text(
        json.dumps(identity.public.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    home.policy_file.write_text(default_policy_text(), encoding="utf-8")
    home.rejects.mkdir(exist_ok=True)
    _write_config(home, kb.version)
    # Imported here so that reading a home's configuration does not load the storage engines.
    from fedrisk.node.auditlog import AuditLog
    from fedrisk.node.store import Store
    from fedrisk.node.vault import Vault

    Store.create(home.store)
    Vault.create(home.vault)
    AuditLog.create(home.audit, site_id, identity)
    return home


def open_home(root: Path) -> NodeHome:
    """Read the configuration of an initialised node home."""
    config = root / CONFIG_FILE
    if not config.is_file():
        raise NodeHomeError(
            f"{root} is not a node home (no {CONFIG_FILE}); run `fedrisk node init`"
        )
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        site_id = str(data["node"]["site_id"])
        kb = str(data["node"].get("kb", ""))
        rules = str(data["node"].get("rules", ""))
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise NodeHomeError(f"{config}: malformed configuration ({exc})") from None
    return NodeHome(
        root.resolve(), site_id, Path(kb) if kb else None, Path(rules) if rules else None
    )


def _write_private(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def _write_config(home: NodeHome, kb_version: str) -> None:
    kb = str(home.kb_path) if home.kb_path else ""
    lines = [
        "# fedrisk node configuration (see docs/operator.md)",
        "[node]",
        f"site_id = {json.dumps(home.site_id)}",
        "# knowledge base folder; empty = the one shipped with fedrisk",
        f"kb = {json.dumps(kb)}",
        f"kb_version_at_init = {json.dumps(kb_version)}",
        "# rule pack file (TOML, see docs/rulepack.md); empty = the one shipped with fedrisk",
        f"rules = {json.dumps(str(home.rules_path) if home.rules_path else '')}",
        f"created = {json.dumps(datetime.now().isoformat(timespec='seconds'))}",
        'contract = "v1"',
        "",
    ]
    home.config.write_text("\n".join(lines), encoding="utf-8")
