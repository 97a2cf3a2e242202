"""The unary RPCs over the Connect protocol on the browser port (docs/web.md), called by
the Connect project's own Python client (binary and JSON), and as a browser would (CORS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.rpc import error_details_pb2

from barrage.v1 import admin_service_connect, event_pb2, insights_service_connect
from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import insights_service_pb2 as ipb
from tests.server_process import ServerProcess, free_port

ALLOWED_ORIGIN = "https://console.example"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    proc = ServerProcess(
        tmp_path / "data",
        args=("--web-listen", f"127.0.0.1:{port}", "--web-allowed-origins", ALLOWED_ORIGIN),
    )
    proc.web_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def reason(error: ConnectError) -> str:
    for detail in error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in {error.details}")


@pytest.mark.parametrize("proto_json", [False, True], ids=["proto", "json"])
async def test_admin_calls_create_publish_and_page_history(web: ServerProcess, room_id: str, proto_json: bool) -> None:
    headers = {"authorization": f"Bearer {web.token('shop', role='service')}"}
    url = str(web.web_url)  # type: ignore[attr-defined]
    async with admin_service_connect.RoomAdminServiceClient(url, proto_json=proto_json) as client:
        created = await client.create_room(pb.CreateRoomRequest(room_id=room_id, title="Spring"), headers=headers)
        assert created.room.room_id == room_id and created.room.title == "Spring"
        cursors = []
        for i in range(3):
            payload = event_pb2.Payload(announcement=event_pb2.Announcement(text=f"sale {i}"))
            posted = await client.publish_event(
                pb.PublishEventRequest(room_id=room_id, request_id=f"p{i}", payload=payload), headers=headers
            )
            cursors.append(posted.cursor)
        page = await client.list_events(pb.ListEventsRequest(room_id=room_id, page_size=50), headers=headers)
        announced = [e for e in page.events if e.payload.WhichOneof("kind") == "announcement"]
        assert [e.cursor for e in announced] == cursors
        assert [e.payload.announcement.text for e in announced] == ["sale 0", "sale 1", "sale 2"]


async def test_errors_carry_the_grpc_code_and_the_error_reason(web: ServerProcess, room_id: str) -> None:
    url = str(web.web_url)  # type: ignore[attr-defined]
    async with admin_service_connect.RoomAdminServiceClient(url) as client:
        with pytest.raises(ConnectError) as missing:
            await client.get_room(pb.GetRoomRequest(room_id=room_id))
        assert missing.value.code == Code.UNAUTHENTICATED and reason(missing.value) == "TOKEN_MISSING"
        viewer = {"authorization": f"Bearer {web.token('alice')}"}
        with pytest.raises(ConnectError) as forbidden:
            await client.create_room(pb.CreateRoomRequest(room_id=room_id), headers=viewer)
        assert forbidden.value.code == Code.PERMISSION_DENIED
        service = {"authorization": f"Bearer {web.token('shop', role='service')}"}
        with pytest.raises(ConnectError) as unknown:
            await client.get_room(pb.GetRoomRequest(room_id=room_id), headers=service)
        assert unknown.value.code == Code.NOT_FOUND


async def test_insights_are_readable_and_watchable(web: ServerProcess, room_id: str) -> None:
    url = str(web.web_url)  # type: ignore[attr-defined]
    headers = {"authorization": f"Bearer {web.token('shop', role='service')}"}
    async with admin_service_connect.RoomAdminServiceClient(url) as admin:
        await admin.create_room(pb.CreateRoomRequest(room_id=room_id, title="Watched"), headers=headers)
    async with insights_service_connect.RoomInsightsServiceClient(url) as client:
        got = await client.get_insights(ipb.GetInsightsRequest(room_id=room_id), headers=headers)
        assert got.insights.room_id == room_id
        async for update in client.watch_insights(ipb.WatchInsightsRequest(room_id=room_id), headers=headers):
            assert update.insights.room_id == room_id  # a server stream: the first update is enough
            break


async def test_a_browser_call_from_an_allowed_origin_passes_cors(web: ServerProcess, room_id: str) -> None:
    url = f"{web.web_url}/barrage.v1.RoomAdminService/GetRoom"  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as http:
        preflight_headers = {
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization,connect-protocol-version",
        }
        async with http.options(url, headers=preflight_headers) as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
            allowed = preflight.headers["Access-Control-Allow-Headers"]
            assert "authorization" in allowed and "connect-protocol-version" in allowed
        headers = {"Origin": ALLOWED_ORIGIN, "Content-Type": "application/json", "Connect-Protocol-Version": "1"}
        async with http.post(url, data=json.dumps({"roomId": room_id}), headers=headers) as response:
            assert response.status == 401  # Connect maps UNAUTHENTICATED to 401
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
            body = await response.json()
            assert body["code"] == "unauthenticated"
        headers["Origin"] = "https://evil.example"
        async with http.post(url, data=b"{}", headers=headers) as refused:
            assert refused.status == 403
