"""PreCheck's gRPC face: each claim's bytes go to the check worker, its answer goes back.

The front never parses a claim: the bytes the HIS sent are the bytes the worker reads, and the
worker's verdict bytes are the answer (gRPC's handlers here take and give ``bytes``). What the
front decides itself: a call already past its deadline is answered DEADLINE_EXCEEDED without
being checked, and a call that finds no worker (one died and its replacement is loading) is
answered UNAVAILABLE at once. Each claim goes to the worker with its call's deadline, and the
worker answers DEADLINE_EXCEEDED, unchecked, for one whose deadline passed while it queued.
The worker's refusals (INVALID_ARGUMENT naming the field, PERMISSION_DENIED) pass through with
their details.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from fedrisk.node.precheckworkers import WorkerLostError, Workers
from fedrisk.protos.fedrisk.v1 import precheck_pb2

SERVICE_DESCRIPTOR = precheck_pb2.DESCRIPTOR.services_by_name["PreCheckService"]
SERVICE = SERVICE_DESCRIPTOR.full_name

Context: TypeAlias = grpc.aio.ServicerContext[bytes, bytes]


class PreCheckService:
    """``Check`` and ``CheckStream`` of ``fedrisk.v1.PreCheckService``, answered by a worker."""

    def __init__(self, workers: Workers) -> None:
        self._workers = workers

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's methods for ``server.add_generic_rpc_handlers``, bytes in and out."""
        methods = {
            "Check": grpc.unary_unary_rpc_method_handler(self.Check),
            "CheckStream": grpc.stream_stream_rpc_method_handler(self.CheckStream),
        }
        declared = {method.name for method in SERVICE_DESCRIPTOR.methods}
        if declared != set(methods):  # the proto gained or lost a method: answer it here first
            raise RuntimeError(f"the proto declares {sorted(declared)}; served: {sorted(methods)}")
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    async def Check(self, request: bytes, context: Context) -> bytes:  # noqa: N802 (gRPC's name)
        return await self._answer(request, context)

    async def CheckStream(  # noqa: N802
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield await self._answer(request, context)

    async def _answer(self, request: bytes, context: Context) -> bytes:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline has passed")
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            code, body = await self._workers.check(request, deadline)
        except WorkerLostError as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        if code is not grpc.StatusCode.OK:
            await context.abort(code, body.decode(errors="replace"))
        return body
