"""The HTML report renders every chart and table, populated; the terminal dashboard renders."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from pathlib import Path

from barrage.clients.insights import render_text
from barrage.clients.report import CHARTS, save_report
from barrage.server.insights.engine import Limits
from tests.test_insights_engine import synthetic_show


class Page(HTMLParser):
    """Collects images (by id), tables (id -> rows of cell texts) and term lists."""

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.blocks: dict[str, list[str]] = {}
        self._table: str | None = None
        self._block: str | None = None
        self._in_body = False
        self._depth = 0
        self._cell: list[str] | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images[a.get("id") or ""] = a.get("src") or ""
        elif tag in ("script", "link") or (tag == "img" and not (a.get("src") or "").startswith("data:")):
            self.external.append(tag)
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "div" and self._block is not None:
            self._depth += 1
        elif tag == "div" and a.get("id") in ("trending", "top-terms", "totals"):
            self._block = a["id"]
            self._depth = 0
            self.blocks[self._block or ""] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag == "div" and self._block is not None:
            if self._depth == 0:
                self._block = None
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._block is not None and data.strip():
            self.blocks[self._block].append(data.strip())


def png_size(uri: str) -> tuple[int, int]:
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_has_every_chart_and_table_populated(tmp_path: Path) -> None:
    insights = synthetic_show().fold().snapshot("Spring sale", limits=Limits(top_questions=50, top_terms=40))
    path = save_report(insights, tmp_path / "out")
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert not page.external  # self-contained
    assert set(page.images) == {f"chart-{name}" for name in CHARTS}
    for uri in page.images.values():
        width, height = png_size(uri)
        assert width > 600 and height > 200
    assert len(page.blocks["totals"]) == 16
    assert page.blocks["trending"] and page.blocks["top-terms"]
    questions = page.tables["questions"]
    assert len(questions) == len(insights.questions) >= 5
    assert any("answered by host" in row[-1] for row in questions)
    assert any("not answered" in row[-1] for row in questions)
    assert [row[0] for row in page.tables["products"]] == ["Dior 999 口红 Lipstick", "兰蔻 小黑瓶 精华液 Serum"]
    assert all(row[2] != "0" for row in page.tables["products"])  # viewers present during the pin
    cohorts = page.tables["cohorts"]
    assert len(cohorts) == len(insights.retention) >= 30 and all(row[2].endswith("%") for row in cohorts)
    assert (tmp_path / "out" / "insights.json").stat().st_size > 1000
    assert "Spring sale" in path.read_text(encoding="utf-8")


def test_dashboard_renders_the_figures() -> None:
    insights = synthetic_show().fold().snapshot("Spring sale")
    text = render_text(insights, width=160, height=45)
    for part in ("Spring sale", "watching now", "what viewers ask", "product funnel", "most used", "retention"):
        assert part in text
    assert "price" in text and "✓ host" in text
