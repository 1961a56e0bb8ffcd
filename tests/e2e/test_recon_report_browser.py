"""Finance's HTML reconciliation report in a real browser: headless Chromium (Debian's
``chromium``) renders ``recon_D.html`` and the figures are read off the rendered DOM, the
statuses have their colours, the charts are drawn to scale, and the page asks for nothing
outside itself.

The screenshot is written to the test's temporary directory; with
``SSCARD_UPDATE_SCREENSHOTS=1`` it replaces ``docs/screenshots/recon-report.png``."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import Engine

from reconciliation.reports import write_reports
from tests.integration.test_recon_reports import DAY, seed

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "docs" / "screenshots" / "recon-report.png"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} missing (CI installs it: apt-get install -y chromium fonts-noto-cjk)",
)


class Figures(HTMLParser):
    """The text of every element carrying ``data-figure`` or ``data-series``, keyed by
    the id of the table or chart it is in (``batches/<bureau>/<batch_no>`` for a batch's
    row, ``open-breaks/<reason>`` for a break's) and its data attributes; and the rows of
    the batch and break tables."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self.open: list[tuple[tuple[str, tuple[tuple[str, str], ...]], list[str]]] = []
        self.scope = ""
        self.rows: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("table", "svg"):
            self.scope = named.get("id") or ""
        data = tuple(sorted((k, v or "") for k, v in attrs if k.startswith("data-")))
        if tag == "tr" and self.scope.split("/")[0] in ("batches", "open-breaks"):
            table = self.scope.split("/")[0]
            self.rows[table] = self.rows.get(table, 0) + 1
            self.scope = "/".join([table, *(v for _, v in data)])
        if any(k in ("data-figure", "data-series") for k, _ in data):
            self.open.append(((self.scope, data), []))

    def handle_data(self, data: str) -> None:
        for _, text in self.open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "text", "span") and self.open:
            key, text = self.open.pop()
            assert key not in self.found, f"two elements for {key}"
            self.found[key] = "".join(text).strip()
        if tag in ("table", "svg"):
            self.scope = ""

    def figure(self, scope: str, **data: str) -> str:
        key = tuple(sorted((f"data-{k.replace('_', '-')}", v) for k, v in data.items()))
        return self.found[(scope, key)]


@pytest.fixture
def report(engine: Engine, tmp_path: Path) -> Path:
    seed(engine)
    return write_reports(engine, DAY, tmp_path / "reports").html


def dump_dom(page: Path, profile: Path) -> str:
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_finance_reads_the_day_s_figures_off_the_rendered_page(
    report: Path, tmp_path: Path
) -> None:
    dom = dump_dom(report, tmp_path / "profile")
    assert "2026-12-09" in dom
    figures = Figures()
    figures.feed(dom)
    total = figures.figure

    assert total("totals", figure="instructed") == "4,805.12"
    assert total("totals", figure="open-breaks") == "5"
    assert total("totals", figure="status-BREAK") == "2"
    assert total("benefit-chart", benefit_type="110", series="instructed") == "4,234.56"
    assert total("benefit-chart", benefit_type="110", series="credited") == "3,234.56"
    assert total("benefit-chart", benefit_type="110", series="returned") == "1,000.00"
    assert total("ageing-chart", age_bucket=">10", figure="count") == "1"
    assert total("ageing-chart", age_bucket="0-1", figure="count") == "2"
    assert total("batches/DB0003/R440300", figure="status") == "BREAK"
    assert total("batches/DB0003/R440300", figure="difference") == "-234.56"
    assert total("open-breaks/R08", figure="amount") == "10.00"
    assert total("open-breaks/R07", figure="age_days") == "13"
    # header row and one row per batch, per open break
    assert figures.rows == {"batches": 1 + 4, "open-breaks": 1 + 5}
    assert "合作银行结算缺失或不符" in dom


def test_the_page_renders_coloured_statuses_and_charts_to_scale_without_the_network(
    report: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("file:")
                    else (requested.append(route.request.url), route.abort())
                ),
            )
            page = context.new_page()
            page.goto(report.as_uri())

            colour = "e => getComputedStyle(e).backgroundColor"
            assert page.locator(".status-BREAK").first.evaluate(colour) == "rgb(197, 48, 48)"
            assert page.locator(".status-BALANCED").first.evaluate(colour) == "rgb(47, 133, 90)"
            assert page.locator(".status-PENDING").first.evaluate(colour) == "rgb(183, 121, 31)"

            heights = page.locator("#benefit-chart rect").evaluate_all(
                "rs => rs.map(r => r.getBBox().height)"
            )
            # 110: instructed 4,234.56 (the tallest bar), credited 3,234.56, returned 1,000.00
            assert heights[0] == 220
            assert heights[1] == 323_456 * 220 // 423_456
            assert heights[2] == 100_000 * 220 // 423_456
            labels = page.locator("#ageing-chart text[data-figure=count]").all_text_contents()
            assert labels == ["2", "1", "1", "1"]
            assert page.get_by_text("基本养老金").first.is_visible()

            shot = tmp_path / "recon-report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert requested == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SSCARD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
