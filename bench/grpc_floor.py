"""gRPC's floor under PreCheck's load: the baseline that ``bench/precheck_load.py`` runs beside it.

    python bench/grpc_floor.py --listen HOST:PORT [--max-pending 256]

The same kind of server as PreCheck's front (``node/serve.py``): ``grpc.aio`` on one event loop
in one process, the ``Check`` method taking and giving bytes, at most ``--max-pending`` calls at
once, ``grpc.health.v1`` saying SERVING, the loaded objects frozen out of the collector. Its
``Check`` does no check: it parses the claim only to echo its request and settlement ids in an
``allow`` verdict (so the load generator's own checks of every answer hold), and answers at
once. What PreCheck costs above this floor, at the same rate on the same machine with the same
generator, is PreCheck's own: the check worker, its pipe, the check and the audit. What this
floor cannot sustain, no PreCheck on this machine can. Stops on SIGTERM or SIGINT (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fedrisk.protos.fedrisk.v1 import precheck_pb2

SERVICE = precheck_pb2.DESCRIPTOR.services_by_name["PreCheckService"].full_name


async def check(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """An ``allow`` verdict for the claim, and nothing else."""
    claim = precheck_pb2.Claim.FromString(request)
    verdict = precheck_pb2.Verdict(
        request_id=claim.request_id,
        settlement_id=claim.settlement.settlement_id,
        decision=precheck_pb2.ALLOW,
        kb_version="floor",
        rule_pack_version="floor",
    )
    answer: bytes = verdict.SerializeToString()
    return answer


async def serve(listen: str, max_pending: int) -> None:
    server = grpc.aio.server(maximum_concurrent_rpcs=max_pending)
    methods = {"Check": grpc.unary_unary_rpc_method_handler(check)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(listen)
    await server.start()
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    gc.collect()
    gc.freeze()  # as the front does: no full collection walks the start-up objects under load
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--max-pending", type=int, default=256, help="calls at once")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.max_pending))


if __name__ == "__main__":
    main()
