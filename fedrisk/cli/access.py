"""Who runs a command and with which key: the principal, the role and the node's passphrase."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedrisk.models.errors import NodeHomeError
from fedrisk.node.access import Principal, SiteAccess
from fedrisk.node.home import NodeHome

PASSPHRASE_VARIABLE = "FEDRISK_NODE_PASSPHRASE"

HomeOption = Annotated[Path, typer.Option("--home", help="The node's home folder.")]

# Named --as (not --role) because `audit query --role` filters entries by role.
OperatorRole = Annotated[
    str, typer.Option("--as", help="The role you act in (a role of HOME/policy.toml).")
]
AuditorRole = OperatorRole


def passphrase(node: NodeHome) -> bytes | None:
    """The passphrase of the node's key, if it has one: from the environment, else asked for."""
    if not node.identity_is_protected():
        return None
    given = os.environ.get(PASSPHRASE_VARIABLE)
    if given:
        return given.encode()
    if sys.stdin.isatty():
        return str(typer.prompt("passphrase of the node key", hide_input=True)).encode()
    raise NodeHomeError(
        f"the key of node {node.site_id} is passphrase-protected: set {PASSPHRASE_VARIABLE}"
    )


def new_passphrase() -> bytes:
    """A passphrase for a new node key: from the environment, else asked for twice."""
    given = os.environ.get(PASSPHRASE_VARIABLE)
    if given:
        return given.encode()
    if not sys.stdin.isatty():
        raise NodeHomeError(f"--passphrase needs {PASSPHRASE_VARIABLE} or a terminal to ask on")
    chosen = typer.prompt("passphrase for the node key", hide_input=True, confirmation_prompt=True)
    return str(chosen).encode()


def open_access(node: NodeHome, role: str, purpose: str) -> SiteAccess:
    """The access of the user running the command, in ``role``, for ``purpose``."""
    return SiteAccess.open(node, Principal.local(role), purpose, passphrase(node))
