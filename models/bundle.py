"""Model bundles (模型库): a trained model as a signed, versioned folder that nodes verify.

A bundle is a folder::

    model.txt       the LightGBM model, loadable as it is by lightgbm.Booster(model_file=…)
    features.json   the feature spec: names and types, in order, with its version
    metrics.json    held-out AUC, PR-AUC (average precision) and the flagging threshold
    metadata.json   data window, knowledge base and rule-pack versions, rows, who trained it
    roc.png pr.png  the held-out ROC and precision-recall curves
    signature.json  the model owner's Ed25519 signature over the SHA-256 of every file above

What a node learns from verifying a bundle: that a model owner it trusts signed exactly these
files. A changed byte in any file, a missing or extra file, an unknown signer or a bad signature
make :func:`verify_bundle` refuse it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from cryptography.exceptions import InvalidSignature
from numpy.typing import NDArray

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity
from fedrisk.models.errors import FedriskError
from fedrisk.models.features import FeatureSpec
from fedrisk.models.metrics import write_curves, write_histogram_curves
from fedrisk.models.training import Trained

FILES = ("model.txt", "features.json", "metrics.json", "metadata.json", "roc.png", "pr.png")
SIGNATURE = "signature.json"
FORMAT = "fedrisk-model-signature-v1"
_SIGNED = b"fedrisk/v1/model-bundle\0"


class BundleError(FedriskError):
    """A bundle that must not be used; the message says which file or key and why."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle."""

    path: Path
    bundle_id: str
    owner: str
    spec: FeatureSpec
    metrics: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.metrics["threshold"])

    def booster(self) -> lgb.Booster:
        return lgb.Booster(model_file=str(self.path / "model.txt"))


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 (hex) of every bundle file present in ``folder``."""
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in FILES
        if (folder / name).is_file()
    }


def bundle_id(files: Mapping[str, str]) -> str:
    """The bundle's version: the first 16 hex digits of a hash over its files' hashes."""
    return hashlib.sha256(canonical_json(dict(files))).hexdigest()[:16]


def sign_bundle(folder: Path, owner: Identity) -> str:
    """Sign every file of the bundle in ``folder`` as ``owner``; returns the bundle id."""
    files = digests(folder)
    missing = [name for name in FILES if name not in files]
    if missing:
        raise BundleError(f"{folder}: cannot sign, missing {', '.join(missing)}")
    claim = _claim(files, owner.public)
    signature = _b64(owner.sign(_message(claim)))
    (folder / SIGNATURE).write_bytes(_signature_file(claim, signature))
    return str(claim["bundle"])


def _signature_file(claim: dict[str, Any], signature: str) -> bytes:
    """The one byte form of a signature record: a verifier recomputes it and compares, so no
    byte of it can change unnoticed (not even whitespace or an unused base64 bit)."""
    record = {**claim, "format": FORMAT, "signature": signature}
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")


def verify_bundle(folder: Path, trusted: Mapping[str, PublicIdentity]) -> Bundle:
    """Check a bundle against the owner keys a node trusts (by fingerprint)."""
    record = _signature_record(folder)
    extra = sorted({p.name for p in folder.iterdir()} - {*FILES, SIGNATURE})
    if extra:
        raise BundleError(f"{folder}: file(s) {', '.join(extra)} are not part of a bundle")
    listed = record.get("files")
    if not isinstance(listed, dict) or sorted(listed) != sorted(FILES):
        raise BundleError(f"{folder}: the signature does not cover the bundle's files")
    present = digests(folder)
    for name in FILES:
        if name not in present:
            raise BundleError(f"{folder}: file {name} is missing")
        if present[name] != listed[name]:
            raise BundleError(f"{folder}: file {name} was changed after it was signed")
    key = trusted.get(str(record.get("key")))
    if key is None:
        raise BundleError(
            f"{folder}: signed by {record.get('owner')!r} (key {record.get('key')}), "
            "which is not a model owner this node trusts"
        )
    claim = _claim(present, key)
    signature = str(record.get("signature"))
    if (folder / SIGNATURE).read_bytes() != _signature_file(claim, signature):
        raise BundleError(f"{folder}: {SIGNATURE} was changed after it was written")
    try:
        raw = base64.b64decode(signature, validate=True)
        if _b64(raw) != signature:  # e.g. an unused bit of the last base64 digit set
            raise ValueError("not the canonical base64 form")
        key.verifier().verify(raw, _message(claim))
    except (InvalidSignature, ValueError):
        raise BundleError(f"{folder}: the owner's signature does not verify") from None
    return _load(folder, str(claim["bundle"]), key.site_id)


def _signature_record(folder: Path) -> dict[str, Any]:
    path = folder / SIGNATURE
    if not path.is_file():
        raise BundleError(f"{folder}: unsigned bundle (no {SIGNATURE}); run `fedrisk model sign`")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not a signature record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise BundleError(f"{path}: not a {FORMAT} record")
    return record


def _claim(files: Mapping[str, str], owner: PublicIdentity) -> dict[str, Any]:
    return {
        "bundle": bundle_id(files),
        "files": dict(sorted(files.items())),
        "owner": owner.site_id,
        "key": owner.fingerprint,
    }


def _message(claim: dict[str, Any]) -> bytes:
    return _SIGNED + canonical_json(claim)


def _load(folder: Path, identifier: str, owner: str) -> Bundle:
    def read(name: str) -> dict[str, Any]:
        return dict(json.loads((folder / name).read_text(encoding="utf-8")))

    try:
        spec = FeatureSpec.from_json(read("features.json"))
        return Bundle(folder, identifier, owner, spec, read("metrics.json"), read("metadata.json"))
    except (ValueError, KeyError) as exc:
        raise BundleError(f"{folder}: a signed file is malformed ({exc})") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_bundle(
    out: Path,
    trained: Trained,
    spec: FeatureSpec,
    metadata: dict[str, Any],
    held_out_labels: NDArray[np.int64],
) -> Path:
    """Write an unsigned bundle into the new folder ``out`` (refused if it holds files)."""
    _new_folder(out)
    trained.booster.save_model(str(out / "model.txt"), num_iteration=trained.booster.best_iteration)
    _write_json(out, spec, {**trained.metrics, "threshold": trained.threshold}, metadata)
    title = f"held-out: {len(held_out_labels):,} rows, {int(held_out_labels.sum()):,} positive"
    write_curves(held_out_labels, trained.held_out_scores, out / "roc.png", out / "pr.png", title)
    return out


def write_federated_bundle(
    out: Path,
    model: str,
    spec: FeatureSpec,
    metrics: dict[str, Any],
    metadata: dict[str, Any],
    histograms: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> Path:
    """Write an unsigned bundle of a federated model: its metrics and curves come from the
    members' summed score histograms (``positives``, ``negatives``), never from rows."""
    _new_folder(out)
    (out / "model.txt").write_text(model, encoding="utf-8")
    _write_json(out, spec, metrics, metadata)
    positives, negatives = histograms
    title = f"federation held-out: {int(positives.sum() + negatives.sum()):,} rows"
    write_histogram_curves(positives, negatives, out / "roc.png", out / "pr.png", title)
    return out


def _new_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out}: not empty; a bundle is written into a new folder")
    out.mkdir(parents=True, exist_ok=True)


def _write_json(
    out: Path, spec: FeatureSpec, metrics: dict[str, Any], metadata: dict[str, Any]
) -> None:
    for name, content in (
        ("features.json", spec.to_json()),
        ("metrics.json", metrics),
        ("metadata.json", metadata),
    ):
        (out / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
