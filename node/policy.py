"""The access policy: which role may read which fields, or write which datasets, for which purpose.

Minimum necessary (最小化): anything the policy does not grant is denied. The policy is a TOML
file in the node home (``policy.toml``, see docs/audit.md); a policy naming an unknown dataset
or field is refused as a whole, so a typo cannot widen or narrow access by accident.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fedrisk.crypto.canonical import canonical_json
from fedrisk.models.errors import FedriskError
from fedrisk.node.datasets import ALL_FIELDS, DATASETS, expand

FORMAT = "fedrisk-policy-v1"
Action = Literal["read", "write"]


class PolicyError(FedriskError):
    """A policy file that cannot be used (names the file, role, purpose and key)."""


@dataclass(frozen=True)
class Grant:
    """What one role may do for one purpose."""

    read: dict[str, frozenset[str]]
    write: frozenset[str]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Policy:
    """A parsed policy; ``version`` is a hash of what it grants (not of its layout)."""

    source: str
    grants: dict[tuple[str, str], Grant]
    version: str

    def decide(
        self, role: str, purpose: str, action: Action, dataset: str, fields: Sequence[str]
    ) -> Decision:
        """Whether ``role`` may ``action`` these ``fields`` of ``dataset`` for ``purpose``."""
        grant = self.grants.get((role, purpose))
        if grant is None:
            if not any(r == role for r, _ in self.grants):
                return Decision(False, f"role {role!r} is not in the policy")
            return Decision(False, f"role {role!r} has no grant for purpose {purpose!r}")
        if action == "write":
            if dataset in grant.write:
                return Decision(True)
            return Decision(False, f"{role}/{purpose} may not write {dataset}")
        allowed = grant.read.get(dataset)
        if allowed is None:
            return Decision(False, f"{role}/{purpose} may not read {dataset}")
        wanted = expand(dataset, fields) if dataset in DATASETS else tuple(fields)
        refused = [f for f in wanted if f not in allowed]
        if refused:
            return Decision(
                False, f"{role}/{purpose} may not read {dataset}." + f", {dataset}.".join(refused)
            )
        return Decision(True)


def default_policy_text() -> str:
    """The policy shipped with fedrisk (copied into each new node home)."""
    return resources.files("fedrisk.node").joinpath("default_policy.toml").read_text("utf-8")


def load_policy(path: Path) -> Policy:
    """Read and check a policy file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no access policy; every read would be denied") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML ({exc})") from None
    if data.get("format") != FORMAT:
        raise PolicyError(f"{source}: format must be {FORMAT!r}, got {data.get('format')!r}")
    roles = data.get("roles")
    if not isinstance(roles, dict) or not roles:
        raise PolicyError(f"{source}: no [roles.<role>] tables")
    grants: dict[tuple[str, str], Grant] = {}
    for role, role_table in roles.items():
        purposes = _table(role_table, f"{source}: roles.{role}").get("purposes", {})
        for purpose, table in _table(purposes, f"{source}: roles.{role}.purposes").items():
            where = f"{source}: roles.{role}.purposes.{purpose}"
            grants[(role, purpose)] = _grant(_table(table, where), where)
    canonical = {
        f"{role}/{purpose}": {
            "read": {d: sorted(f) for d, f in sorted(g.read.items())},
            "write": sorted(g.write),
        }
        for (role, purpose), g in sorted(grants.items())
    }
    version = hashlib.sha256(canonical_json(canonical)).hexdigest()[:16]
    return Policy(source, grants, version)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{where} must be a table")
    return value


def _grant(table: dict[str, Any], where: str) -> Grant:
    unknown = set(table) - {"about", "read", "write"}
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    read: dict[str, frozenset[str]] = {}
    for dataset, fields in _table(table.get("read", {}), f"{where}.read").items():
        _known_dataset(dataset, f"{where}.read")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise PolicyError(f"{where}.read.{dataset} must be a list of field names")
        bad = [f for f in fields if f != ALL_FIELDS and f not in DATASETS[dataset]]
        if bad:
            raise PolicyError(f"{where}.read.{dataset}: {dataset} has no field(s) {', '.join(bad)}")
        read[dataset] = frozenset(DATASETS[dataset] if ALL_FIELDS in fields else fields)
    write = table.get("write", [])
    if not isinstance(write, list) or not all(isinstance(d, str) for d in write):
        raise PolicyError(f"{where}.write must be a list of dataset names")
    for dataset in write:
        _known_dataset(dataset, f"{where}.write")
    return Grant(read, frozenset(write))


def _known_dataset(dataset: str, where: str) -> None:
    if dataset not in DATASETS:
        raise PolicyError(
            f"{where}: unknown dataset {dataset!r} (known: {', '.join(sorted(DATASETS))})"
        )
