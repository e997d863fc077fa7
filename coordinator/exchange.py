"""One exchange with the nodes over Flower's Grid: send each its message, collect the replies.

A reply that carries an error (the ClientApp raised, e.g. it refused a message) or that does
not come before the timeout counts as no answer; the caller decides what a missing node means
(a dropped node in a round, a member that did not enroll) and logs it by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

log = logging.getLogger("fedrisk.coordinator")
# Send ``{node id: (message type, content)}``, get the replies by node id (errors dropped).
Exchange = Callable[[Mapping[int, tuple[str, RecordDict]]], dict[int, Message]]


def grid_exchange(grid: Grid, timeout: float, group: str) -> Exchange:
    """An :data:`Exchange` over ``grid`` with a per-exchange ``timeout`` in seconds."""

    def exchange(sends: Mapping[int, tuple[str, RecordDict]]) -> dict[int, Message]:
        messages = [
            Message(content=body, dst_node_id=node, message_type=kind, group_id=group)
            for node, (kind, body) in sends.items()
        ]
        replies: dict[int, Message] = {}
        for reply in grid.send_and_receive(messages, timeout=timeout):
            node = reply.metadata.src_node_id
            if reply.has_error():
                log.warning("node %d answered with an error: %s", node, reply.error.reason)
                continue
            replies[node] = reply
        return replies

    return exchange
