"""A node's model registry: signed bundles pushed to it, and which one screening uses.

``HOME/models/<bundle_id>/`` holds each pushed bundle as it was signed, and
``HOME/models/registry.json`` the activation history (the last entry is the active model). A
bundle is verified against the owners trusted in ``config.toml`` when it is pushed, when it is
activated and every time screening loads it; a refusal is an audit entry like a denied read,
and so are pushes, activations and rollbacks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fedrisk.models.bundle import FILES, SIGNATURE, Bundle, BundleError, verify_bundle
from fedrisk.node.access import SiteAccess
from fedrisk.node.home import NodeHome

REGISTRY = "registry.json"


def push(access: SiteAccess, bundle: Path) -> Bundle:
    """Verify ``bundle`` and copy it into the registry (not yet active)."""
    verified = _verified(access, bundle)
    target = access.home.models / verified.bundle_id
    if not target.exists():
        access.write("models", 1, lambda: _copy(bundle, target))
    return _verified(access, target)


def activate(access: SiteAccess, bundle_id: str) -> Bundle:
    """Make a pushed bundle the one screening uses."""
    verified = _verified(access, access.home.models / bundle_id, known=True)
    history = _history(access.home)
    access.write("models", 1, lambda: _save_history(access.home, [*history, bundle_id]))
    return verified


def rollback(access: SiteAccess) -> Bundle | None:
    """Go back to the model active before the current one (None: no model any more)."""
    history = _history(access.home)
    if not history:
        raise BundleError("no model is active: nothing to roll back")
    earlier = history[:-1]
    previous = _verified(access, access.home.models / earlier[-1]) if earlier else None
    access.write("models", 1, lambda: _save_history(access.home, earlier))
    return previous


def active(access: SiteAccess) -> Bundle | None:
    """The active bundle, verified again (a registry tampered with is refused and audited)."""
    history = access.read("models", ["bundle_id", "active"], lambda: _history(access.home))
    if not history:
        return None
    return _verified(access, access.home.models / history[-1])


def listing(access: SiteAccess) -> list[dict[str, Any]]:
    """Every pushed bundle with its owner, metrics and metadata, and whether it is active."""
    return access.read(
        "models",
        ["bundle_id", "owner", "metrics", "metadata", "active"],
        lambda: _listing(access.home),
    )


def _listing(home: NodeHome) -> list[dict[str, Any]]:
    history = _history(home)
    current = history[-1] if history else None
    rows = []
    folder = home.models
    for path in sorted(folder.iterdir() if folder.is_dir() else []):
        if not path.is_dir():
            continue
        signature = json.loads((path / SIGNATURE).read_text(encoding="utf-8"))
        rows.append(
            {
                "bundle_id": path.name,
                "owner": signature.get("owner"),
                "active": path.name == current,
                "metrics": json.loads((path / "metrics.json").read_text(encoding="utf-8")),
                "metadata": json.loads((path / "metadata.json").read_text(encoding="utf-8")),
            }
        )
    return rows


def _verified(access: SiteAccess, folder: Path, known: bool = False) -> Bundle:
    if known and not folder.is_dir():
        raise BundleError(f"no bundle {folder.name} in this node's registry; push it first")
    try:
        return verify_bundle(folder, access.home.trusted_owners())
    except BundleError as exc:
        entry = access.refuse("read", "models", f"bundle refused: {exc}")
        raise BundleError(f"{exc} (refusal logged as audit entry {entry})") from None


def _copy(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in (*FILES, SIGNATURE):
        shutil.copy2(source / name, partial / name)
    os.replace(partial, target)


def _history(home: NodeHome) -> list[str]:
    path = home.models / REGISTRY
    if not path.is_file():
        return []
    return [str(i) for i in json.loads(path.read_text(encoding="utf-8"))["history"]]


def _save_history(home: NodeHome, history: list[str]) -> None:
    home.models.mkdir(exist_ok=True)
    temporary = home.models / (REGISTRY + ".tmp")
    temporary.write_text(json.dumps({"history": history}, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, home.models / REGISTRY)
