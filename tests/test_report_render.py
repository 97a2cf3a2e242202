"""The report as a reader sees it: rendered in headless Chromium for a long, a short and a
one-bucket show, with screenshots kept under the test's tmp dir, and checked against the
figures (axis labels, retention) and the page's geometry (table headers over their cells).
The terminal dashboard fits an 80×24 terminal and a 140-column one without cutting names."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from rich.cells import cell_len

from barrage.clients.insights import render_text, retention_survival
from barrage.clients.report import figures, save_report, time_ticks
from barrage.server.insights.engine import Limits
from barrage.v1 import insights_service_pb2 as pb
from tests.test_insights_engine import synthetic_show

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent

# Run in the page after load: text extents of every table cell, the images' sizes and the page's
# height, written into the DOM as JSON for --dump-dom to hand back.
MEASURE = """
<script>
function box(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const r = range.getBoundingClientRect();
  return {left: r.left, right: r.right, width: r.width, text: el.innerText.trim(),
          align: getComputedStyle(el).textAlign};
}
const out = {tables: {}, images: {}, height: document.documentElement.scrollHeight};
for (const t of document.querySelectorAll("table")) {
  out.tables[t.id] = {
    heads: [...t.querySelectorAll("thead th")].map(box),
    rows: [...t.querySelectorAll("tbody tr")].map(tr => [...tr.children].map(box)),
  };
}
for (const img of document.querySelectorAll("img")) {
  const r = img.getBoundingClientRect();
  const section = img.closest("section").getBoundingClientRect();
  out.images[img.id] = {natural: img.naturalWidth, left: r.left, right: r.right,
                        sectionLeft: section.left, sectionRight: section.right};
}
const node = document.createElement("script");
node.type = "application/json";
node.id = "measured";
node.textContent = JSON.stringify(out);
document.body.appendChild(node);
</script>
"""


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary, installed by scripts/install_chromium.sh if missing (never a skip)."""
    if shutil.which("chromium") is None or not list(Path("/usr/share/fonts").rglob("NotoSansCJK*")):
        done = subprocess.run(
            [str(ROOT / "scripts" / "install_chromium.sh")], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, f"could not install chromium:\n{done.stderr[-2000:]}"
    path = shutil.which("chromium")
    assert path is not None, "chromium is not on PATH after scripts/install_chromium.sh"
    return path


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]
    done = subprocess.run([binary, *flags, *args], check=False, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def look(binary: str, report: Path, shots: Path) -> dict[str, Any]:
    """Open the report in Chromium: measure the DOM, then screenshot the whole page."""
    measured = report.with_name("measured.html")
    measured.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(binary, "--window-size=1200,900", "--virtual-time-budget=5000", "--dump-dom", measured.as_uri())
    found = re.search(r'<script type="application/json" id="measured">(.*?)</script>', dom.stdout, re.S)
    assert found, "the page's measurements are missing: the page did not load"
    page: dict[str, Any] = json.loads(found.group(1))
    shots.parent.mkdir(parents=True, exist_ok=True)
    _chromium(binary, f"--window-size=1200,{page['height']}", f"--screenshot={shots}", report.as_uri())
    assert shots.stat().st_size > 50_000
    return page


def show(minutes: int) -> pb.RoomInsights:
    return synthetic_show(minutes=minutes).fold().snapshot("Spring sale", limits=Limits(top_questions=50, top_terms=40))


def tick_labels(ax: Any) -> tuple[list[str], float]:
    """An axes' visible x tick labels and their spacing in seconds."""
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    ticks = list(ax.get_xticks())
    step = round((ticks[1] - ticks[0]) * 86_400) if len(ticks) > 1 else 0
    return labels, step


# ---------------------------------------------------------------------- in the browser


@pytest.mark.parametrize("minutes", [40, 3, 1], ids=["long-show", "short-show", "one-bucket-show"])
def test_the_rendered_page_aligns_headers_and_cells_and_shows_every_chart(
    chromium: str, tmp_path: Path, minutes: int
) -> None:
    insights = show(minutes)
    report = save_report(insights, tmp_path / "out")
    page = look(chromium, report, tmp_path / "screenshots" / f"report-{minutes}min.png")

    for rid, table in page["tables"].items():
        heads = table["heads"]
        for row in table["rows"]:
            if len(row) == 1 and row[0]["text"] == "none":
                continue
            assert len(row) == len(heads), f"{rid}: a row with {len(row)} cells under {len(heads)} headers"
            for head, cell in zip(heads, row, strict=True):
                assert cell["align"] == head["align"], f"{rid}/{head['text']}: {cell['align']} under {head['align']}"
                if not cell["width"]:
                    continue  # an empty cell (a cohort not yet known that far)
                edge = "right" if head["align"] == "right" else "left"
                assert abs(cell[edge] - head[edge]) <= 1.5, f"{rid}/{head['text']}: {cell['text']!r} off its header"

    for name, image in page["images"].items():
        assert image["natural"] > 600, f"{name} did not load"
        assert image["sectionLeft"] <= image["left"] and image["right"] <= image["sectionRight"]

    cohorts = page["tables"]["cohorts"]["rows"]
    assert len(cohorts) == len(insights.retention)
    for row, cohort in zip(cohorts, insights.retention, strict=True):
        shown = [cell["text"] for cell in row[2:] if cell["text"]]
        assert shown == [f"{n / cohort.arrivals:.0%}" for n in list(cohort.remaining)[:8]]
        assert all(int(text.rstrip("%")) <= 100 for text in shown)


# ---------------------------------------------------------------------- the charts' figures


def test_time_axes_are_labelled_by_the_windows_length_without_repeats() -> None:
    for minutes in (40, 3):
        charts = figures(show(minutes))
        for name in ("viewers", "engagement", "audience-flow"):
            for ax in charts[name].axes:
                labels, step = tick_labels(ax)
                if not labels:
                    continue  # the top row of a shared x axis
                assert len(labels) == len(set(labels)) >= 3, labels
                # seconds in the labels exactly when the ticks are less than a minute apart
                pattern = r"\d\d:\d\d:\d\d" if step < 60 else r"\d\d:\d\d"
                assert all(re.fullmatch(pattern, label) for label in labels), (step, labels)
        labels, step = tick_labels(charts["viewers"].axes[0])
        assert (step < 60) == (minutes == 3), (minutes, labels)  # a 3-minute show in seconds, 40 in minutes


@pytest.mark.parametrize(
    ("span_s", "step_s"), [(60, 10), (180, 30), (86, 15), (2400, 300), (3 * 3600, 1800), (10 * 3600, 7200)]
)
def test_ticks_are_a_round_step_apart_at_most_eight_and_never_read_the_same(span_s: int, step_s: int) -> None:
    start = 1_763_000_000.0  # a round minute
    ticks = time_ticks(start, start + span_s)
    times = [t for t, _ in ticks]
    labels = [label for _, label in ticks]
    assert 2 <= len(ticks) <= 8
    assert {round(b - a) for a, b in itertools.pairwise(times)} == {step_s}
    assert len(set(labels)) == len(labels)
    assert all(len(label) == (8 if step_s < 60 else 5) for label in labels)


def test_the_retention_curve_is_the_life_table_of_the_cohorts_and_never_rises() -> None:
    insights = pb.RoomInsights()
    # An early cohort that stays, later ones that leave: pooling each point over the cohorts
    # known there would read 47 %, 60 %, 100 % — climbing back to everyone.
    insights.retention.add(arrivals=10, remaining=[10, 10, 10])
    insights.retention.add(arrivals=10, remaining=[2, 2])
    insights.retention.add(arrivals=10, remaining=[2])
    assert retention_survival(insights) == pytest.approx([14 / 30, 14 / 30, 14 / 30])
    insights.retention[0].remaining[:] = [8, 6, 3]
    assert retention_survival(insights) == pytest.approx([12 / 30, 12 / 30 * 8 / 10, 12 / 30 * 8 / 10 * 3 / 6])


@pytest.mark.parametrize("minutes", [40, 3])
def test_the_charted_retention_is_the_computed_one(minutes: int) -> None:
    insights = show(minutes)
    figure = figures(insights)["retention"]
    blue = figure.axes[0].lines[-1]
    drawn = [float(y) for y in blue.get_ydata()]
    assert drawn == pytest.approx([share * 100 for share in retention_survival(insights)])
    assert all(0 <= y <= 100 for y in drawn)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(drawn))


def test_a_one_bucket_show_gets_sensible_axes() -> None:
    insights = show(1)
    assert insights.totals.peak_viewers == insights.totals.joins == 40  # filled and closed in one slot: not 0
    charts = figures(insights)
    retention = charts["retention"].axes[0]
    low, high = retention.get_xlim()
    assert low < 0 and high >= 1  # at least buckets 0 and 1, not −0.04 to 0.04
    assert retention.get_ylim() == (0, 105)
    for ax in charts["engagement"].axes:
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 1


def _overlaps(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_the_funnel_legend_clears_the_title_and_the_leaves_note_clears_the_bars() -> None:
    charts = figures(show(40))
    funnel = charts["funnel"]
    renderer = funnel.canvas.get_renderer()
    funnel.canvas.draw()
    title = funnel.axes[0].title.get_window_extent(renderer)
    for legend in funnel.legends:
        assert not _overlaps(legend.get_window_extent(renderer), title)
    flow = charts["audience-flow"]
    flow.canvas.draw()
    renderer = flow.canvas.get_renderer()
    ax = flow.axes[0]
    notes = [text for text in ax.texts if text.get_text().startswith("most left")]
    assert len(notes) == 1
    note = notes[0].get_window_extent(renderer)
    bars = [bar.get_window_extent(renderer) for bar in ax.patches if bar.get_height()]
    assert bars and not any(_overlaps(note, bar) for bar in bars)


def test_counts_of_one_are_singular_and_trending_does_not_repeat_the_most_used(tmp_path: Path) -> None:
    insights = show(3)  # no longer than the trend window: nothing can be rising
    insights.products[0].mentioners = 1
    insights.products[0].units_during_pin = 1
    page = save_report(insights, tmp_path / "out").read_text(encoding="utf-8")
    assert "(1 viewer)" in page and "(1 unit)" in page and "(1 viewers)" not in page
    trending = re.search(r'<div class="terms" id="trending">(.*?)</div>', page, re.S)
    assert trending and "no term is rising" in trending.group(1)
    assert "Trending terms" not in page


# ---------------------------------------------------------------------- the terminal dashboard


@pytest.mark.parametrize(("width", "height"), [(80, 24), (140, 40)])
def test_the_dashboard_fits_the_terminal_and_shows_every_product_whole(width: int, height: int) -> None:
    insights = show(40)
    text = render_text(insights, width=width, height=height)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == height
    assert all(cell_len(line) <= width for line in lines)
    funnel = lines[next(i for i, line in enumerate(lines) if "product funnel" in line) :]
    for product in insights.products:
        assert any(product.title in line for line in funnel), f"{product.title} cut in\n{text}"
    for header in ("pinned", "seen", "named", "asked", "bought", "conv."):
        assert header in text
    assert "watching now" in text and "retention" in text and "what viewers ask" in text
    assert "✓ host" in text or "waiting" in text  # at least one question row fits
