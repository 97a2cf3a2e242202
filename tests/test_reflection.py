"""Server reflection serves the public API with every dependency, so a tool that has no
.proto file (grpcurl, grpcui, Postman) can call any method and decode its errors."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

from tests.server_process import ServerProcess

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


class Reflection:
    """A reflection client: v1 and v1alpha share their messages on the wire."""

    def __init__(self, channel: grpc.Channel, method: str) -> None:
        self._call = channel.stream_stream(
            method,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )

    def ask(self, **request: object) -> reflection_pb2.ServerReflectionResponse:
        (response,) = list(self._call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
        return response

    def files(self, **request: object) -> list[descriptor_pb2.FileDescriptorProto]:
        response = self.ask(**request)
        assert response.HasField("file_descriptor_response"), response.error_response
        raw = response.file_descriptor_response.file_descriptor_proto
        return [descriptor_pb2.FileDescriptorProto.FromString(data) for data in raw]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: reflection is read-only."""
    proc = ServerProcess(tmp_path_factory.mktemp("reflection") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(params=[V1, V1ALPHA], ids=["v1", "v1alpha"])
def reflect(node: ServerProcess, request: pytest.FixtureRequest) -> Iterator[Reflection]:
    with grpc.insecure_channel(node.target) as channel:
        yield Reflection(channel, request.param)


def pool_of(files: list[descriptor_pb2.FileDescriptorProto]) -> descriptor_pool.DescriptorPool:
    """A client-side pool from what the server sent; fails if an import is missing."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        assert name in by_name, f"the server did not send {name}, an import"
        for dependency in by_name[name].dependency:
            add(dependency)
        pool.Add(by_name[name])
        added.add(name)

    for name in by_name:
        add(name)
    return pool


def test_the_services_are_listed(reflect: Reflection) -> None:
    names = {s.name for s in reflect.ask(list_services="").list_services_response.service}
    assert {"barrage.v1.RoomService", "barrage.v1.RoomAdminService", "grpc.health.v1.Health"} <= names
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_a_method_resolves_with_every_type_it_needs(reflect: Reflection) -> None:
    pool = pool_of(reflect.files(file_containing_symbol="barrage.v1.RoomService"))

    connect = pool.FindServiceByName("barrage.v1.RoomService").methods_by_name["Connect"]
    assert connect.input_type.full_name == "barrage.v1.ConnectRequest"
    assert connect.output_type.full_name == "barrage.v1.ConnectResponse"
    join_result = pool.FindMessageTypeByName("barrage.v1.JoinResult")
    status = join_result.fields_by_name["status"].message_type
    assert status is not None and status.full_name == "google.rpc.Status"
    assert pool.FindMessageTypeByName("barrage.v1.Event").fields_by_name["payload"].message_type is not None
    assert pool.FindMessageTypeByName("google.protobuf.Timestamp") is not None

    admin = pool_of(reflect.files(file_containing_symbol="barrage.v1.RoomAdminService"))
    list_events = admin.FindServiceByName("barrage.v1.RoomAdminService").methods_by_name["ListEvents"]
    events = list_events.output_type.fields_by_name["events"].message_type
    assert events is not None and events.full_name == "barrage.v1.Event"


def test_error_details_resolve_by_name(reflect: Reflection) -> None:
    """Error statuses carry ErrorInfo and RetryInfo packed in Any: a tool looks them up by name."""
    for detail in ("google.rpc.ErrorInfo", "google.rpc.RetryInfo"):
        pool = pool_of(reflect.files(file_containing_symbol=detail))
        assert pool.FindMessageTypeByName(detail).full_name == detail
    assert pool_of(reflect.files(file_by_filename="google/rpc/status.proto")).FindMessageTypeByName("google.rpc.Status")


def test_files_keep_their_package_options(reflect: Reflection) -> None:
    (event,) = (f for f in reflect.files(file_by_filename="barrage/v1/event.proto") if f.name.startswith("barrage"))
    assert (event.options.java_package, event.options.objc_class_prefix) == ("com.barrage.v1", "BRG")


def test_internal_records_are_not_served(reflect: Reflection) -> None:
    assert reflect.ask(file_containing_symbol="barrage.internal.v1.RoomCheckpoint").HasField("error_response")
    assert reflect.ask(file_by_filename="server/commerce/checkpoint.proto").HasField("error_response")
