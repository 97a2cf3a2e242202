"""gRPC server reflection of the public API, every dependency included.

Reflection-based tools (grpcurl, grpcui, Postman, Kreya) resolve a method's types
and then every file those import, and decode error details (google.rpc.ErrorInfo,
RetryInfo, packed in Any) by looking their names up. So the served pool holds the
files of the served services, their transitive imports, and google/rpc/
error_details.proto, which no service imports but every error carries. It is a pool
of its own: the process's default pool also holds server-internal records
(server/commerce/checkpoint.proto) that are not part of the API.

Both reflection protocols are served: grpc.reflection.v1 (what current tools ask
first) and v1alpha (older ones). Their messages are identical on the wire, so one
servicer answers both.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
"""The stable reflection service; grpcio-reflection ships only v1alpha."""

SERVICE_NAMES = (V1_SERVICE_NAME, reflection.SERVICE_NAME)


def public_pool(files: Iterable[descriptor.FileDescriptor]) -> descriptor_pool.DescriptorPool:
    """A pool holding `files` and everything they import, transitively."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        added.add(file.name)
        for dependency in file.dependencies:  # a pool needs a file's imports first
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)

    for file in files:
        add(file)
    return pool


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection (v1 and v1alpha) for `service_names`, which must be in the
    default pool (their generated modules imported)."""
    names = (*service_names, *SERVICE_NAMES)
    default = descriptor_pool.Default()
    files = [default.FindFileContainingSymbol(name) for name in names if name != V1_SERVICE_NAME]
    pool = public_pool([*files, error_details_pb2.DESCRIPTOR])
    servicer = reflection.aio.ReflectionServicer(names, pool=pool)
    reflection.enable_server_reflection(names, server, pool=pool)
    v1 = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
