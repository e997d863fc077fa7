"""Echo app: every SuperNode answers one ``query`` with its node_config and where it runs.

The ServerApp sends one query to each connected SuperNode, collects the replies and writes
them as JSON to ``run_config["out"]``. Each ClientApp also reports where Python found this
module and the installed ``fedrisk`` package, so the test can check how FABs are imported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

server = ServerApp()
client = ClientApp()


@client.query()
def echo(msg: Message, context: Context) -> Message:
    """Reply with this node's node_config and import facts."""
    import fedrisk  # the installed package, as the real ClientApp will use it

    reply = ConfigRecord(
        {
            **{f"node.{key}": value for key, value in context.node_config.items()},
            "node-id": context.node_id,
            "echo-module": __file__,
            "fedrisk-module": str(fedrisk.__file__),
            "sys-path-0": sys.path[0],
        }
    )
    return Message(RecordDict({"echo": reply}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Query every SuperNode once and write the replies to run_config["out"]."""
    node_ids = _wait_for_nodes(grid, int(context.run_config["min-nodes"]), context)
    queries = [
        Message(RecordDict({"ask": ConfigRecord({"x": 1})}), node, MessageType.QUERY)
        for node in node_ids
    ]
    replies = grid.send_and_receive(queries, timeout=float(context.run_config["wait"]))
    found = {}
    for reply in replies:
        if reply.has_error():
            found[str(reply.metadata.src_node_id)] = {"error": reply.error.reason}
        else:
            found[str(reply.metadata.src_node_id)] = dict(reply.content["echo"])
    Path(str(context.run_config["out"])).write_text(json.dumps(found, indent=1))


def _wait_for_nodes(grid: Grid, count: int, context: Context) -> list[int]:
    deadline = time.monotonic() + float(context.run_config["wait"])
    while True:
        node_ids = list(grid.get_node_ids())
        if len(node_ids) >= count or time.monotonic() > deadline:
            return node_ids
        time.sleep(0.5)
