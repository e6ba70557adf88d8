"""The report page as a reader gets it: its structure parsed with ``html.parser`` (always), and the page loaded in a
real headless browser (skipped where none is installed; Debian: ``apt-get install chromium-headless-shell`` or
``chromium``), which must log no console error, lay out the forest plot with one mark per claim, and save a
screenshot (kept in ``docs/report-screenshot.png`` when run with ``HEIST_REPORT_SCREENSHOT=1``, so that a test
run does not change a committed file)."""

import os
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.claims.records import ClaimRecord, Figure, Histogram
from harness.claims.report import render_html, write_report
from harness.claims.runs import RunReport

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell")


def checkerboard(size: int, colour) -> np.ndarray:
    image = np.full((size, size, 3), 230, np.uint8)
    image[(np.indices((size, size)).sum(0) // 8) % 2 == 0] = colour
    return image


def rows() -> tuple[ClaimRecord, ...]:
    """Claims of every kind: supported, refuted, inconclusive, an equivalence claim, a selection, an error with no
    interval, and hostile text in a statement and a caption."""
    base = ClaimRecord(
        id="B1-success", statement="The agent reaches the gem in more than 80% of levels.", sites=("policy",),
        metric="success rate", family="confirmatory", seeds="confirmation", n=512, direction="lower",
        threshold=0.8, family_alpha=0.05, family_size=5, confidence=0.99, verdict="supported",
        message="success rate = 0.939 [0.904, 0.962]; needed lower bound > 0.8", test="claims/test_b.py::test_b1",
        estimate=0.939, ci_low=0.904, ci_high=0.962, method="Wilson", checksums={"policy": "0a3f"},
        figures=(Figure.from_rgb(checkerboard(64, (40, 90, 200)), "a confirmation level (64x64)"),),
    )  # fmt: skip
    return (
        base,
        replace(base, id="CH1-up-channel", verdict="refuted", estimate=0.004, ci_low=0.001, ci_high=0.008,
                direction="lower", threshold=0.01, selected_on="selection", selected={"channel": 6}, unit="pairs",
                history=({"run": "r0", "sampling_seed": 3, "verdict": "inconclusive", "estimate": 0.005},),
                histogram=Histogram.of(np.random.default_rng(0).normal(0.004, 0.002, 400), kind="bootstrap"),
                statement="Zeroing the <b>up</b> channel & friends lowers P(UP) </section><script>alert(1)</script>",
                figures=(Figure.from_rgb(checkerboard(512, (200, 40, 40)), 'left "clean" <right> edited'),)),
        replace(base, id="B2-equivalence", direction="equivalence", threshold=0.1, estimate=0.0, ci_low=-0.03,
                ci_high=0.032, figures=()),
        replace(base, id="P1-probe", verdict="inconclusive", estimate=0.418, ci_low=0.36, ci_high=0.478,
                threshold=0.4, figures=()),
        replace(base, id="CX1-walls", verdict="error", estimate=None, ci_low=None, ci_high=None, figures=(),
                message="ClaimError: the policy could not be loaded from fixtures/agents/x.pt"),
        replace(base, id="X9-unreadable", verdict="error", direction=None, threshold=None, estimate=None,
                ci_low=None, ci_high=None, figures=(), message="ClaimError: declare exactly one bound"),
    )  # fmt: skip


RUN = {"run": "demo", "git_commit": "abc123", "checksums": {"policy": "0a3f"}, "seed_ranges": ["confirmation"],
       "compared_with": "reports/shipped-agent/claims.json"}  # fmt: skip


class Outline(HTMLParser):
    """What a reader meets, in order: headings, the forest plot's marks, sections, pictures, tables."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.marks: list[dict] = []
        self.sections: list[str] = []
        self.images: list[dict] = []
        self.forbidden: list[str] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "link", "iframe", "object") or any(k.startswith("on") for k in attrs):
            self.forbidden.append(tag)
        if tag == "g" and "mark" in attrs.get("class", "").split():
            self.marks.append(attrs)
        if tag == "svg" and "forest" in attrs.get("class", "").split():
            self.order.append("forest")
        if tag == "table":
            self.order.append("table")
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
            self.order.append(f"section:{attrs.get('id', '')}")
        if tag == "img":
            self.images.append(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_page_structure_parsed():
    """Forest plot first (one mark per claim, coloured by verdict), then the summary table, a section per claim and
    the run last; pictures large enough to read and captioned; claim text shown as text, never as markup."""
    claims = rows()
    outline = Outline()
    outline.feed(render_html(RunReport(run=RUN, claims=claims)))
    assert outline.order[:2] == ["forest", "table"]
    assert [m["data-claim"] for m in outline.marks] == [r.id for r in claims]
    assert [m["data-verdict"] for m in outline.marks] == [r.verdict for r in claims]
    assert outline.sections == [r.id for r in claims] + ["run"]
    assert outline.forbidden == []
    widths = [int(re.fullmatch(r"width:(\d+)px", img["style"]).group(1)) for img in outline.images]
    assert widths == [320, 512]  # the 64x64 frame scaled by 5, the 512x512 picture as it is
    assert [img["alt"] for img in outline.images] == [claims[0].figures[0].caption, claims[1].figures[0].caption]
    text = "".join(outline.text)
    assert claims[1].statement in text  # literally, tags and all, as text
    assert "selected: channel=6 (chosen on selection)" in text
    assert "compared with" in text and "reports/shipped-agent/claims.json" in text
    assert "n = 512 pairs" in text and "1 earlier run of this claim" in text and "inconclusive" in text


def test_paths_inside_the_project_are_written_relative(tmp_path):
    project = tmp_path / "project"
    (project / "reports").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    claims = (replace(rows()[0], message=f"error in {project}/claims/test_b.py:12",
                      figures=(Figure.from_rgb(checkerboard(8, (0, 0, 0)), f"from {project}/fixtures/x"),)),)
    run = {**RUN, "policy": f"{project}/fixtures/agents/a.pt", "saes": {"conv3a": f"{project}/s.pt"}}
    write_report(RunReport(run=run, claims=claims), project / "reports" / "r")
    for name in ("claims.json", "claims.md", "claims.csv", "index.html"):
        text = (project / "reports" / "r" / name).read_text()
        assert str(project) not in text, name
    page = (project / "reports" / "r" / "index.html").read_text()
    assert "claims/test_b.py:12" in page and "fixtures/agents/a.pt" in page and "from fixtures/x" in page


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _load(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _console(done: subprocess.CompletedProcess) -> list[str]:
    """The page's console messages and uncaught errors, as the browser logs them to stderr."""
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


needs_browser = pytest.mark.skipif(
    _browser() is None, reason=f"no headless browser installed (looked for {', '.join(BROWSERS)})"
)


@needs_browser
def test_the_browser_check_sees_console_errors(tmp_path):
    """The console check can fail: a page with a script error is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><p>x</p><script>console.error('boom'); notDefined();</script>")
    assert len(_console(_load(_browser(), page, tmp_path / "profile", "--dump-dom"))) == 2


@needs_browser
def test_page_in_a_headless_browser(tmp_path):
    """The browser parses the page into the same forest plot (its DOM after loading), logs no console error, and
    renders a screenshot."""
    browser, claims = _browser(), rows()
    (page,) = [p for p in write_report(RunReport(run=RUN, claims=claims), tmp_path / "run") if p.suffix == ".html"]
    dom = _load(browser, page, tmp_path / "profile", "--dump-dom")
    assert _console(dom) == []
    outline = Outline()
    outline.feed(dom.stdout)
    assert [m["data-claim"] for m in outline.marks] == [r.id for r in claims]
    assert outline.order[:2] == ["forest", "table"] and outline.forbidden == []
    shot = tmp_path / "shot.png"
    _load(browser, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("HEIST_REPORT_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(shot.read_bytes())
