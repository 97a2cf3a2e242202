"""The console (/console) and the viewer page (/live/ROOM) in a real headless Chromium
(Debian's package, driven by Playwright for Python; never a browser Playwright downloads),
against a real node on loopback (docs/web.md, "The pages").

One operator page at 1280x800 and two viewer pages at 390x844. Screenshots of each go to
tests/artifacts/ (git-ignored), printed at the end of the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from barrage.v1 import admin_service_pb2 as admin_pb
from barrage.v1 import admin_service_pb2_grpc, event_pb2
from tests.server_process import ROOT, ServerProcess, free_port

ROOM = "spring-tea"
ARTIFACTS = ROOT / "tests" / "artifacts"
CATALOGUE = (("p-oolong", "乌龙茶 Oolong tea"), ("p-cup", "玻璃杯 Glass cup"), ("p-pot", "紫砂壶 Clay teapot"))

pytestmark = pytest.mark.timeout(180)


def chromium() -> str:
    """Debian's chromium and fonts, installed by scripts/install_chromium.sh if missing (never a skip)."""
    done = subprocess.run([str(ROOT / "scripts" / "install_chromium.sh")], check=False, capture_output=True, text=True)
    assert done.returncode == 0, f"could not install chromium:\n{done.stderr[-2000:]}"
    path = shutil.which("chromium")
    assert path is not None, "chromium is not on PATH after scripts/install_chromium.sh"
    return path


class Node:
    """A node with its browser port, a room owned by a host, and the room's catalogue."""

    def __init__(self, tmp_path: Path) -> None:
        port = free_port()
        self.server = ServerProcess(tmp_path / "data", args=("--web-listen", f"127.0.0.1:{port}"))
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.server.start()
        self.host_token = self.server.token("host-mei", role="host", name="主播 Mei")
        self.channel = grpc.insecure_channel(self.server.target)
        self.admin = admin_service_pb2_grpc.RoomAdminServiceStub(self.channel)
        host = (("authorization", f"Bearer {self.host_token}"),)
        self.admin.CreateRoom(admin_pb.CreateRoomRequest(room_id=ROOM, title="春茶直播 Spring tea"), metadata=host)
        products = [event_pb2.CatalogueProduct(product_id=pid, names=[name]) for pid, name in CATALOGUE]
        payload = event_pb2.Payload(catalogue_registered=event_pb2.CatalogueRegistered(products=products))
        request = admin_pb.PublishEventRequest(room_id=ROOM, request_id="cat-1", payload=payload)
        self.admin.PublishEvent(request, metadata=host)

    def critical_event_ids(self) -> list[str]:
        """Every critical event of the room's log, in order."""
        service = (("authorization", f"Bearer {self.server.token('ops', role='service')}"),)
        ids: list[str] = []
        cursor = ""
        while True:
            request = admin_pb.ListEventsRequest(room_id=ROOM, cursor=cursor, page_size=500)
            page = self.admin.ListEvents(request, metadata=service)
            ids.extend(e.event_id for e in page.events if e.priority == event_pb2.PRIORITY_CRITICAL)
            if not page.next_cursor:
                return ids
            cursor = page.next_cursor

    def stop(self) -> None:
        self.channel.close()
        self.server.stop()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def shoot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def console(browser: Browser, node: Node) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{node.url}/console")
    shoot(page, "console-sign-in-1280x800")
    page.fill("#token", node.host_token)
    page.click("#signin button[type=submit]")
    page.click(f'#rooms li[data-room-id="{ROOM}"]')
    expect(page.locator("#link")).to_have_attribute("data-state", "live")
    expect(page.locator("#catalogue li")).to_have_count(len(CATALOGUE))
    assert "token" not in page.url and node.host_token not in page.url
    return page


def viewer(browser: Browser, node: Node, user: str, name: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    token = node.server.token(user, name=name)
    page.goto(f"{node.url}/live/{ROOM}#token={token}")
    expect(page.locator("#link")).to_have_attribute("data-state", "live")
    assert token not in page.url, "the page drops the token from the address bar"
    return context, page


def notices(page: Page) -> list[str]:
    script = "els => els.map(e => e.dataset.eventId)"
    ids: list[str] = page.eval_on_selector_all("#feed li.notice[data-event-id]", script)
    return ids


def test_console_and_two_viewers_in_chromium(node: Node, browser: Browser) -> None:
    operator = console(browser, node)
    _, first = viewer(browser, node, "v-lin", "林")
    second_context, second = viewer(browser, node, "v-sam", "Sam")
    shots = []

    # The operator pins a product: every viewer shows the card within a second.
    started = time.monotonic()
    operator.click('#catalogue li[data-product-id="p-oolong"] button')
    for page in (first, second):
        expect(page.locator("#product-title")).to_have_text("乌龙茶 Oolong tea", timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the pinned card took {elapsed:.3f} s to reach both viewers"
    print(f"pinned card on both viewers {elapsed * 1000:.0f} ms after the click")
    expect(operator.locator('#catalogue li[data-product-id="p-oolong"] button')).to_have_text("Unpin")

    # A viewer's question appears highlighted on the console, and in its question groups.
    first.fill("#text", "这个乌龙茶多少钱？")
    first.press("#text", "Enter")
    question = operator.locator("#feed li.question", has_text="这个乌龙茶多少钱？")
    expect(question).to_be_visible(timeout=3000)
    assert question.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    expect(second.locator("#danmaku .bullet", has_text="这个乌龙茶多少钱？")).to_have_count(1)  # flying over the video
    first.fill("#text", "好喝吗")
    first.press("#text", "Enter")
    expect(operator.locator("#questions li[data-group-id]").first).to_be_visible(timeout=15000)

    # A like counts for the room: the other viewer shows the room's total.
    first.click("#like")
    expect(second.locator("#likes")).to_have_text("1")

    # The operator deletes a comment: it leaves every viewer's feed.
    line = operator.locator("#feed li.comment", has_text="好喝吗")
    line.hover()
    line.locator("button[data-action=delete]").click()
    expect(line).to_have_class(re.compile(r"\bdeleted\b"))
    for page in (first, second):
        expect(page.locator("#feed li.comment", has_text="好喝吗")).to_have_count(0)
        expect(page.locator("#danmaku .bullet", has_text="好喝吗")).to_have_count(0)
    shots.append(shoot(operator, "console-1280x800"))

    # The second viewer's network is cut; the operator goes on; the network comes back.
    before = set(node.critical_event_ids())
    second_context.set_offline(True)
    second.evaluate("window.barrage.client.stream?.ws.close()")  # an open socket may outlive the emulation
    expect(second.locator("#link")).not_to_have_attribute("data-state", "live")
    operator.fill("#announce input[name=text]", "新茶到货 New harvest in")
    operator.click("#announce button[type=submit]")
    operator.click('#catalogue li[data-product-id="p-cup"] button')
    operator.fill("#poll input[name=question]", "下一款看什么 Next?")
    operator.fill("#poll input[name=options]", "茶壶, 茶杯")
    operator.click("#poll button[type=submit]")
    operator.fill("#lottery input[name=prize]", "茶具一套 Tea set")
    operator.click("#lottery button[type=submit]")
    operator.select_option("#sale-product", "p-pot")
    operator.click("#sale button[type=submit]")
    missed: list[str] = []
    deadline = time.monotonic() + 10
    while len(missed) < 5 and time.monotonic() < deadline:  # pin, announcement, poll, lottery, sale
        missed = [eid for eid in node.critical_event_ids() if eid not in before]
        time.sleep(0.1)
    assert len(missed) == 5, f"the operator's five critical events were not all logged: {missed}"
    expect(first.locator("#feed li.notice").last).to_contain_text("Flash sale")
    assert second.evaluate("navigator.onLine") is False
    assert not set(notices(second)) & set(missed), "offline, the second viewer saw none of them"
    expect(second.locator("#link")).not_to_have_attribute("data-state", "live")
    second_context.set_offline(False)

    expect(second.locator("#link")).to_have_attribute("data-state", "live", timeout=15000)
    for event_id in missed:
        expect(second.locator(f'#feed li[data-event-id="{event_id}"]')).to_have_count(1)
    shown = notices(second)
    assert len(shown) == len(set(shown)), "no critical event is shown twice"
    assert [eid for eid in shown if eid in missed] == missed, "the missed events in the log's order"
    expect(second.locator("#product-title")).to_have_text("玻璃杯 Glass cup")
    expect(second.locator("#sale")).to_be_visible()
    expect(second.locator("#sale-countdown")).to_have_text(re.compile(r"^[0-9]+:[0-5][0-9]$"))
    expect(second.locator("#poll")).to_contain_text("下一款看什么 Next?")
    expect(second.locator("#lottery")).to_contain_text("茶具一套 Tea set")

    # A vote on one phone moves the tally on the other (poll_tally).
    first.locator("#poll .option", has_text="茶杯").click()
    expect(second.locator("#poll .option", has_text="茶杯").locator(".count")).to_have_text("1")

    # The operator mutes the first viewer: its next comment is refused, and it is told.
    muted = operator.locator("#feed li.comment", has_text="这个乌龙茶多少钱？")
    muted.hover()
    muted.locator("button[data-action=mute]").click()
    expect(operator.locator("#feed li.notice", has_text="muted v-lin")).to_have_count(1)
    first.fill("#text", "还有吗")
    first.press("#text", "Enter")
    expect(first.locator("#feed li.notice.error")).to_have_count(1)
    expect(operator.locator("#feed li.comment", has_text="还有吗")).to_have_count(0)

    # A page embedded in the shop's app gets its token by postMessage instead of the fragment.
    third_context = browser.new_context(viewport={"width": 390, "height": 844})
    third = third_context.new_page()
    third.goto(f"{node.url}/live/{ROOM}")
    expect(third.locator("#link")).to_have_attribute("data-state", "idle")
    script = "t => window.postMessage({type: 'barrage.token', token: t}, location.origin)"
    third.evaluate(script, node.server.token("v-app", name="App"))
    expect(third.locator("#link")).to_have_attribute("data-state", "live")
    expect(third.locator("#product-title")).to_have_text("玻璃杯 Glass cup")
    third_context.close()

    shots.append(shoot(first, "viewer-1-390x844"))
    shots.append(shoot(second, "viewer-2-390x844-after-resume"))
    shots.append(shoot(operator, "console-1280x800-after"))
    print("screenshots:", *shots, sep="\n  ")


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_pages_come_from_the_node_with_a_strict_content_security_policy(node: Node) -> None:
    status, headers, body = fetch(f"{node.url}/console")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert rule in csp
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert b'src="/static/console.js"' in body and b"http" not in body.split(b"<body")[0], "nothing from a CDN"

    status, headers, _ = fetch(f"{node.url}/live/{ROOM}")
    assert status == 200 and "frame-ancestors 'self'" in headers["Content-Security-Policy"]
    status, headers, _ = fetch(f"{node.url}/static/live.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")

    for path in ("/static/pages.py", "/static/..%2fpages.py", "/static/console.html", "/static/nope.js", "/live/a/b"):
        assert fetch(f"{node.url}{path}")[0] == 404, path


def test_the_committed_page_bundles_are_built_from_the_sources(tmp_path: Path) -> None:
    """server/transport/static/{console,live}.js are committed; they must match the sources
    (clients/pages/src and the SDK in clients/ts/src), which must type-check."""
    pages = ROOT / "clients" / "pages"
    if (
        shutil.which("node") is None
        or not (pages / "node_modules").is_dir()
        or not (ROOT / "clients/ts/node_modules").is_dir()
    ):
        pytest.fail("Node.js or clients/{pages,ts}/node_modules missing: run scripts/install_node.sh")
    typecheck = subprocess.run(
        [str(pages / "node_modules/.bin/tsc"), "-p", "tsconfig.json"],
        cwd=pages,
        check=False,
        capture_output=True,
        text=True,
    )
    assert typecheck.returncode == 0, typecheck.stdout[-3000:]
    env = {**os.environ, "BUNDLE_OUT": str(tmp_path)}
    done = subprocess.run(["node", "build.mjs"], cwd=pages, env=env, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("console.js", "live.js"):
        built = (tmp_path / name).read_bytes()
        assert built == (ROOT / "server/transport/static" / name).read_bytes(), (
            f"server/transport/static/{name} is stale: run `npm run build` in clients/pages and commit it"
        )
