"""Certificates and SuperNode keys for a federation on several machines.

::

    python -m fedrisk.deploy.make_certs --out DIR --superlink-host HOST [--superlink-ip IP] \\
        --nodes H1 P1 …

writes, with :mod:`fedrisk.deploy.pki`:

- ``DIR/tls/``: a fresh CA (``ca.crt``, ``ca.key``) and the SuperLink's server certificate
  (``superlink.crt``, ``superlink.key``) whose SANs are every ``--superlink-host`` and
  ``--superlink-ip`` plus ``127.0.0.1`` and ``localhost``;
- ``DIR/nodes/``: per node name an ECDSA P-384 key pair in OpenSSH format (``NAME.key``,
  ``NAME.key.pub``) for Flower's SuperNode authentication;

then prints what to copy to which host. Private files are 0600, ``tls/`` and ``nodes/`` 0700
(``DIR`` too if it is new). It never overwrites: a second CA would silently break every node
that trusts the first one, a new key every registration of the old one.

Name the nodes like the systemd instances (``fedrisk-supernode@NAME``), e.g. by site id: the
unit reads its key from ``/etc/fedrisk/keys/NAME.key``. See deploy/README.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from fedrisk.deploy.pki import NodeKey, TlsFiles, make_node_key, make_tls

# The SuperLink's own SuperExec and ServerApp processes dial it at 127.0.0.1 when it listens on
# 0.0.0.0 (flwr.supercore.address.resolve_bind_address): without IP:127.0.0.1 no run starts.
# localhost is for an operator's flwr CLI on the SuperLink host.
LOCAL_SANS = ("127.0.0.1", "localhost")
# Same rule as pki.make_node_key, checked before anything is written.
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CA, the SuperLink certificate and the node keys; 0 on success, 2 on misuse."""
    parser = _parser()
    args = parser.parse_args(argv)
    out: Path = args.out
    nodes: list[str] = args.nodes
    bad = [name for name in nodes if not _NODE_NAME.match(name)]
    if bad:
        parser.error(f"node names {bad}: letters, digits, '.', '_', '-' (at most 64)")
    if len(set(nodes)) != len(nodes):
        parser.error("node names must be distinct")
    sans = _dedupe([*args.superlink_host, *(str(ip) for ip in args.superlink_ip), *LOCAL_SANS])
    targets = [
        out / "tls" / f"{name}.{ext}" for name in ("ca", "superlink") for ext in ("crt", "key")
    ]
    targets += [out / "nodes" / f"{name}{ext}" for name in nodes for ext in (".key", ".key.pub")]
    if existing := [str(path) for path in targets if path.exists()]:
        parser.error(f"refusing to overwrite {', '.join(existing)}: use a new --out folder")

    # They hold the CA key and every node's private key. A folder given as --out that exists
    # already (say the current one) keeps its mode: only the subfolders are ours to restrict.
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (out / "tls", out / "nodes"):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    tls = make_tls(out / "tls", hosts=tuple(sans))
    keys = [make_node_key(out / "nodes", name) for name in nodes]
    print(_instructions(out, tls, keys, sans))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fedrisk.deploy.make_certs",
        description="Write a CA, the SuperLink's TLS certificate and SuperNode key pairs.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (0700)")
    parser.add_argument(
        "--superlink-host",
        type=_host,
        action="append",
        required=True,
        metavar="HOST",
        help="DNS name the nodes and the flwr CLI dial (repeat for more names)",
    )
    parser.add_argument(
        "--superlink-ip",
        type=ipaddress.ip_address,
        action="append",
        default=[],
        metavar="IP",
        help="IP address they dial, if any (repeat for more)",
    )
    parser.add_argument(
        "--nodes",
        nargs="+",
        required=True,
        metavar="NAME",
        help="one SuperNode key pair per name (use the site id)",
    )
    return parser


def _host(text: str) -> str:
    """A DNS name, lower-cased (certificate checks ignore case; the SAN list then dedupes)."""
    labels = text.removesuffix(".").split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name")
    return text.removesuffix(".").lower()


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _instructions(out: Path, tls: TlsFiles, keys: Sequence[NodeKey], sans: Sequence[str]) -> str:
    lines = [
        f"Wrote {out} (private files 0600). SuperLink certificate SANs: {', '.join(sans)}.",
        "Certificates are valid for 365 days.",
        "",
        "SuperLink host (/etc/fedrisk/tls/, owner fedrisk):",
        f"  {tls.ca_cert}  -> /etc/fedrisk/tls/ca.crt (0644)",
        f"  {tls.server_cert}  -> /etc/fedrisk/tls/superlink.crt (0644)",
        f"  {tls.server_key}  -> /etc/fedrisk/tls/superlink.key (0600)",
        "Every node host, and the operator's flwr CLI (root-certificates in config.toml):",
        f"  {tls.ca_cert}  -> /etc/fedrisk/tls/ca.crt (0644)",
    ]
    for key in keys:
        lines += [
            f"Node {key.name} (its host only):",
            f"  {key.private_key}  -> /etc/fedrisk/keys/{key.name}.key (0600, owner fedrisk)",
            f"  register: flwr supernode register {key.public_key} <superlink-name>",
        ]
    lines += [
        "Keep offline, on no host of the federation:",
        f"  {tls.ca_key}  (only to issue new certificates; anyone holding it can impersonate"
        " the SuperLink)",
        f"Once copied, delete the private keys under {out / 'nodes'}: each belongs on one host.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
