"""``fedrisk audit prove``: an inclusion proof of one entry that anyone can check offline.

The proof file carries the entry as stored, its position, the audit path (RFC 9162 §2.1.3) and
the node's latest signed tree head. A third party who trusts the node's public identity checks
it with :func:`check_inclusion` — or with any RFC 9162 implementation and an Ed25519 verifier
(docs/audit.md shows one in a few lines of Python). What the proof reveals: the one entry, the
log's size, and ``log2(size)`` hashes — no other entry.
"""

from __future__ import annotations

from typing import Any

from fedrisk.crypto.identity import PublicIdentity
from fedrisk.crypto.merkle import inclusion_proof, leaf_hash, verify_inclusion
from fedrisk.crypto.treehead import TreeHead
from fedrisk.models.errors import FedriskError
from fedrisk.node.access import SiteAccess
from fedrisk.node.auditlog import entry_lines, last_head

FORMAT = "fedrisk-inclusion-proof-v1"


def prove_entry(access: SiteAccess, index: int) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` under the latest signed head (an audited read)."""
    folder = access.home.audit
    head = last_head(folder)
    if head is None or not 0 <= index < head.size:
        size = 0 if head is None else head.size
        raise FedriskError(f"no entry {index}: the latest signed head covers {size} entries")
    lines = access.read("audit", ["*"], lambda: entry_lines(folder)[: head.size])
    leaves = [leaf_hash(line) for line in lines]
    return {
        "format": FORMAT,
        "index": index,
        "entry": lines[index].decode("utf-8"),
        "tree_size": head.size,
        "audit_path": [h.hex() for h in inclusion_proof(leaves, index, head.size)],
        "head": head.to_json(),
    }


def check_inclusion(proof: dict[str, Any], key: PublicIdentity) -> TreeHead:
    """Raise unless ``proof`` shows its entry in the log whose head ``key`` signed."""
    if proof.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    head = TreeHead.from_json(proof["head"])
    head.verify(key)
    if int(proof["tree_size"]) != head.size:
        raise ValueError("the proof's tree size is not the signed head's")
    verify_inclusion(
        int(proof["index"]),
        head.size,
        leaf_hash(str(proof["entry"]).encode("utf-8")),
        [bytes.fromhex(h) for h in proof["audit_path"]],
        head.root,
    )
    return head
