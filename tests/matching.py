"""An in-process federation for matching tests.

The coordinator's workflow (:func:`fedrisk.coordinator.matching.run_job`) talks to the nodes'
step function (:func:`fedrisk.node.clientapp.match_step`) directly, with the same records,
signed messages and ciphertexts that travel over Flower — only the transport is left out
(tests/test_cli.py runs the real one). Every byte a node sends back is kept for wire checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from flwr.app import RecordDict

from fedrisk.cli.demofed import trust_each_other
from fedrisk.coordinator.exchange import Exchange
from fedrisk.coordinator.matching import JobReport, run_jobs
from fedrisk.crypto.identity import PublicIdentity
from fedrisk.node.access import Principal
from fedrisk.node.clientapp import match_step
from fedrisk.node.home import NodeHome
from fedrisk.node.matching.results import results_file
from fedrisk.node.membership import accept_epoch, make_epoch
from fedrisk.protos.matching import MatchTask
from fedrisk.protos.records import RECORD, content

FEDERATION = "demo"


@dataclass
class Federation:
    homes: dict[int, NodeHome]  # by Flower-like node id
    public_context: bytes
    received: list[bytes] = field(default_factory=list)  # every value nodes sent back
    errors: dict[str, str] = field(default_factory=dict)
    silent: set[tuple[str, int]] = field(default_factory=set)  # (step, node) that never answer

    @property
    def nodes(self) -> dict[int, PublicIdentity]:
        return {n: home.public_identity() for n, home in self.homes.items()}

    def exchange(self) -> Exchange:
        def exchange(sends: Mapping[int, tuple[str, RecordDict]]) -> dict[int, object]:
            replies: dict[int, object] = {}
            for node, (kind, body) in sends.items():
                home = self.homes[node]
                step = kind.removeprefix("query.")
                if (step, node) in self.silent:
                    continue
                config = body.config_records[RECORD]
                try:
                    fields = match_step(step, config, home, Principal("pytest", "operator"))
                except Exception as error:  # an error reply, as Flower would deliver it
                    self.errors[home.site_id] = f"{type(error).__name__}: {error}"
                    continue
                self.errors.update(
                    {f"{home.site_id} {k}": str(v) for k, v in fields.items() if ".error" in k}
                )
                for value in fields.values():
                    self.received.append(value if isinstance(value, bytes) else str(value).encode())
                replies[node] = SimpleNamespace(content=content(fields))
            return replies

        return exchange  # type: ignore[return-value]

    def run(self, job: str, window: str = "all", run: str = "m1") -> JobReport:
        return self.run_all([job], window, run)[0]

    def run_all(self, jobs: list[str], window: str = "all", run: str = "m1") -> list[JobReport]:
        tasks = [MatchTask(FEDERATION, 1, run, job, window) for job in jobs]
        return run_jobs(self.exchange(), self.nodes, self.public_context, tasks)

    def flags(self, job: str, window: str = "all") -> set[tuple[str, str, str]]:
        """``(rule_id, site_id, settlement_id)`` of every node's results file of ``job``."""
        out = set()
        for home in self.homes.values():
            path = results_file(home.root, job, window)
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    flag = json.loads(line)
                    out.add((flag["rule_id"], flag["site_id"], flag["settlement_id"]))
        return out


def federate(homes: list[NodeHome]) -> Federation:
    """Every home trusts the others; the first makes epoch 1 and all accept it."""
    trust_each_other(homes)
    creator = homes[0]
    new = make_epoch(
        creator, creator.identity(), FEDERATION, 1, [h.public_identity() for h in homes]
    )
    for home in homes:
        envelope = new.envelopes[home.public_identity().fingerprint]
        accept_epoch(home, home.identity(), new.membership.creator, FEDERATION, 1, envelope)
    return Federation({i + 1: home for i, home in enumerate(homes)}, new.public_context)


def home_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
