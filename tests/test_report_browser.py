"""The report in a real browser: the distribution's headless Chromium, driven by Playwright, opens
the page from file:// with the network off. Skipped, with the reason, where Playwright or chromium
is missing; under CHARLSTM_REQUIRE_BROWSER=1 (as .ci/run sets) a missing browser is a failure."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from charlstm.store import checkpoint

from helpers import HOSTILE, REPORT_CELLS, run_cli

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture says so
    expect = sync_playwright = None

SECTIONS = ("curves", "samples", "surprisal", "neurons", "gates", "gradients")


def chromium() -> str | None:
    """The browser to drive: $CHARLSTM_CHROMIUM, else chromium (or chromium-browser) on PATH."""
    return os.environ.get("CHARLSTM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    why = None
    if sync_playwright is None:
        why = "Playwright is not installed (pip install -e '.[test]')"
    elif chromium() is None:
        why = "no chromium on PATH (apt-get install chromium)"
    if why is not None:
        if os.environ.get("CHARLSTM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CHARLSTM_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium())
        yield b
        b.close()


@dataclass
class Opened:
    """A page opened offline, and what it tried: requests other than file://, console errors and
    uncaught exceptions, failed requests, dialogs (alert, confirm, prompt)."""

    page: Any = None
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_offline(browser, path: Path, javascript: bool = True) -> Opened:
    seen = Opened()
    context = browser.new_context(offline=True, java_script_enabled=javascript, viewport={"width": 1200, "height": 900})

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            seen.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("requestfailed", lambda r: seen.failed.append(r.url))
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    seen.page = page
    return seen


@pytest.fixture
def opened(browser, report_page):
    seen = open_offline(browser, report_page)
    yield seen
    seen.page.context.close()


def test_the_page_loads_offline_clean_with_every_section(opened):
    page = opened.page
    for key in SECTIONS:
        section = page.locator(f"section#{key}")
        assert section.locator("h2").is_visible() and len(section.locator("p.lead").inner_text()) > 40
        if key != "curves" and key != "gradients":
            assert section.locator("h3").count() == len(REPORT_CELLS), key
    assert page.locator("nav a").count() == len(SECTIONS)
    assert page.locator("#gradients svg polyline[data-key=h]").count() == 2 * len(
        REPORT_CELLS
    )  # a line per run and layer
    assert opened.outside == [] and opened.errors == [] and opened.failed == [] and opened.dialogs == []


def test_the_curves_have_a_point_per_logged_step_and_validation(opened, report_runs):
    page = opened.page
    for cell in REPORT_CELLS:
        saved = checkpoint.load(report_runs / "runs" / f"{cell}.resume.safetensors")
        for key, n in (
            ("train", len(saved.train["curve"])),
            ("val", len(saved.history)),
            ("lr", len(saved.train["curve"])),
        ):
            line = page.locator(f"#curves polyline[data-key={key}][data-run={cell}]")
            assert line.evaluate("el => el.points.numberOfItems") == n, (cell, key)
            box = line.bounding_box()
            assert box and box["width"] > 100
        assert page.locator(f"#curves circle.dot[fill='{line.get_attribute('stroke')}']").count() >= 2 * len(
            saved.history
        )


def test_the_samples_are_in_order(opened, report_runs):
    for cell in REPORT_CELLS:
        history = checkpoint.load(report_runs / "runs" / f"{cell}.resume.safetensors").history
        items = opened.page.locator(f"ol.samples[data-run={cell}] li")
        steps = [int(s) for s in items.evaluate_all("els => els.map(e => e.dataset.step)")]
        assert steps == [h["step"] for h in history] == sorted(steps)
        assert items.locator("pre").all_inner_texts() == [h["sample"] for h in history]


def glyph(ch: str) -> str:
    return {"\n": "↵\n"}.get(ch, ch)


def expected_tip(shown: dict, t: int) -> list[str]:
    """The tooltip of predicted character t (text[t + 1]) as eval --show's JSON has it."""
    visible = {"\n": "\\n", " ": "␠"}
    ch = shown["text"][t + 1]
    return [f"{visible.get(ch, ch)}: {shown['bits'][t]:.2f} bits"] + [
        f"{visible.get(g, g)} {p:.3f}" for g, p in shown["guesses"][t]
    ]


def test_hovered_and_focused_guesses_are_eval_shows(opened, report_runs):
    result = run_cli(
        "eval",
        str(report_runs / "val.txt"),
        "-c",
        str(report_runs / "runs" / "gru.safetensors"),
        "--top",
        "5",
        "--json",
    )
    shown = json.loads(result.stdout)["surprisal"]
    page = opened.page
    chars = page.locator(".sx[data-run=gru] i[data-g]")
    assert chars.count() == len(shown["bits"])
    tip = page.locator("#tip")
    for t in (0, 7, 60, len(shown["bits"]) // 2, len(shown["bits"]) - 1):
        chars.nth(t).hover()
        assert tip.is_visible() and tip.inner_text().split("\n") == expected_tip(shown, t), t
    page.mouse.move(0, 0)
    assert not tip.is_visible()
    page.locator(".sx[data-run=gru]").focus()  # as Tab into the text does: its first character takes the focus
    expect(tip).to_have_text("\n".join(expected_tip(shown, 0)))
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(tip).to_have_text("\n".join(expected_tip(shown, 3)))
    assert page.evaluate("document.activeElement.textContent") == glyph(shown["text"][4])
    page.keyboard.press("Shift+Tab")  # back out of the text: the tooltip goes
    expect(tip).to_be_hidden()


def test_markup_in_the_text_and_samples_is_shown_and_runs_nothing(opened):
    page = opened.page
    for cell in REPORT_CELLS:
        text = page.locator(f".sx[data-run={cell}]").inner_text()
        assert "<script>alert(1)</script>" in text and "</textarea>" in text
        assert page.locator(f"ol.samples[data-run={cell}] pre").first.inner_text().startswith(HOSTILE)
    assert page.evaluate("document.scripts.length") == 1
    page.locator(".sx[data-run=lstm] i[data-g]").nth(5).hover()
    assert opened.dialogs == [] and opened.errors == []


def test_the_page_reads_without_javascript(browser, report_page):
    seen = open_offline(browser, report_page, javascript=False)
    page = seen.page
    for key in SECTIONS:
        assert page.locator(f"section#{key} h2").is_visible()
    first = page.locator(".sx[data-run=lstm] i[title]").first
    assert first.is_visible() and " bits\n" in first.get_attribute("title")
    assert page.locator("ol.samples li").count() == 3 * len(REPORT_CELLS)
    assert page.locator("svg polyline").first.is_visible()
    assert seen.outside == [] and seen.errors == []
    page.context.close()


def test_fifteen_runs_settings_read_at_1200_px_without_scrolling_sideways(browser, many_runs_page):
    """The settings of 15 runs, a row each, fit the page at 1200 px: neither the table nor the
    page scrolls sideways."""
    out, _ = many_runs_page
    seen = open_offline(browser, out)
    try:
        page = seen.page
        table = page.locator("table.settings")
        assert table.locator("tr").count() == 16
        box = table.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1200, box
        assert page.evaluate("document.documentElement.scrollWidth") <= 1200
        assert not seen.errors and not seen.outside
    finally:
        seen.page.context.close()
