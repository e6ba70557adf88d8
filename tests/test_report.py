"""Report rows, writers, PNG encoder, SVG histogram, saved runs and their comparison, without pytest's plugin."""

import base64
import csv
import io
import json
import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace

import numpy as np
import pytest

from harness.errors import ClaimError
from harness.claims.png import encode_png
from harness.claims.records import ClaimRecord, Figure, Histogram
from harness.claims.report import (
    histogram_svg,
    markdown_text,
    relative_to_project,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    render_terminal,
    write_report,
)
from harness.claims.runs import RunReport, compare_runs, load_run

REQUIRED_JSON_FIELDS = {
    "id", "statement", "verdict", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "n", "seeds", "family",
    "method", "threshold", "direction", "checksums",
}  # fmt: skip


def record(claim_id: str = "H1", **changes) -> ClaimRecord:
    base = ClaimRecord(
        id=claim_id, statement="Ablating channel 17 | lowers P(UP).", sites=("conv3a:17",), metric="mean drop in P(UP)",
        family="confirmatory", seeds="confirm", n=512, direction="lower", threshold=0.1, family_alpha=0.05,
        family_size=2, confidence=0.975, verdict="supported", message="mean drop = 0.2 [0.15, 0.25]",
        test="claims/test_up.py::test_up", estimate=0.2, ci_low=0.15, ci_high=0.25, method="paired BCa bootstrap",
        p_value=0.001, p_adjusted=0.002, null_quantile=0.999, checksums={"policy": "sha256:ab12"},
        histogram=Histogram.of(np.linspace(-0.1, 0.1, 500), kind="null"),
        figures=(Figure.from_rgb(np.full((8, 8, 3), 200, np.uint8), "clean <level>"),),
    )  # fmt: skip
    return replace(base, **changes)


RUN = {"run": "r1", "git_commit": None, "checksums": {"policy": "sha256:ab12"}, "seed_ranges": ["confirm"]}


def decode_png(data: bytes) -> np.ndarray:
    """Read back what :func:`encode_png` writes (8-bit RGB, filter 0), checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        tag, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(tag + body)
        chunks[tag] = body
        position += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trips_pixels():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(image)), image)


def test_png_opens_in_pillow_when_installed():
    pil = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(1).integers(0, 256, (6, 3, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(pil.open(io.BytesIO(encode_png(image))).convert("RGB")), image)


@pytest.mark.parametrize("image", [np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_png_rejects_anything_but_rgb_bytes(image):
    with pytest.raises(ClaimError, match="uint8 RGB"):
        encode_png(image)


def test_a_record_round_trips_through_plain_json():
    row = record()
    again = ClaimRecord.from_dict(json.loads(json.dumps(row.to_dict())))
    assert again == row
    with pytest.raises(ClaimError, match="unknown fields"):
        ClaimRecord.from_dict({**row.to_dict(), "colour": "red"})
    with pytest.raises(ClaimError, match="verdict 'maybe'"):
        record(verdict="maybe")


def test_json_holds_every_required_field_and_no_pictures():
    data = json.loads(render_json(RunReport(run=RUN, claims=(record(), record("H2", estimate=None)))))
    assert data["run"] == RUN
    for row in data["claims"]:
        assert REQUIRED_JSON_FIELDS <= row.keys() and "figures" not in row
    assert data["claims"][1]["estimate"] is None


def test_csv_has_one_row_per_claim():
    rows = list(csv.DictReader(io.StringIO(render_csv(RunReport(run=RUN, claims=(record(), record("H2")))))))
    assert [r["id"] for r in rows] == ["H1", "H2"]
    assert rows[0]["checksums"] == "policy=sha256:ab12" and rows[0]["sites"] == "conv3a:17"
    assert (rows[0]["unit"], rows[0]["earlier_runs"]) == ("levels", "0")


def test_markdown_table_escapes_pipes():
    text = render_markdown(RunReport(run=RUN, claims=(record(seeds="select|confirm"),)))
    row = (
        "| H1 | SUPPORTED | 0.2 [0.15, 0.25] | 512 levels | 0.001 | 0.002 | lower bound > 0.1 | – | confirmatory "
        "| select\\|confirm |"
    )
    assert row in text
    assert "Ablating channel 17 \\| lowers P(UP)." in text


def test_markdown_shows_claim_text_literally():
    """Statements, captions and messages carry no live markup into claims.md (issue 19, item 12)."""
    statement = "# Big <script>alert(1)</script> [click](javascript:x) *bold* _it_ a_b"
    message = "value `x` = 1\nsecond line"
    text = render_markdown(RunReport(run=RUN, claims=(record(statement=statement, message=message),)))
    assert "\\# Big &lt;script>alert(1)&lt;/script> [click\\](javascript:x) \\*bold\\* \\_it\\_ a_b" in text
    assert "`` value `x` = 1 second line ``" in text  # one code span, fenced past its own backticks
    assert "<script" not in text and "pictures (in index.html): clean &lt;level>" in text
    assert markdown_text("> quoted") == "&gt; quoted" and markdown_text("3. third") == "3\\. third"


def test_html_is_self_contained_with_pictures_and_histogram():
    page = render_html(RunReport(run=RUN, claims=(record(), record("H2", verdict="refuted", histogram=None))))
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    png = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert decode_png(base64.b64decode(png)).shape == (8, 8, 3)
    assert "clean &lt;level&gt;" in page  # captions are escaped
    assert page.count("<svg") == 2 and page.count('class="forest"') == 2  # the forest plot and one histogram


def test_histogram_marks_observation_and_threshold():
    svg = ET.fromstring(histogram_svg(record()))
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert "observed 0.2" in titles and "threshold 0.1" in titles
    equivalence = ET.fromstring(histogram_svg(record(direction="equivalence", threshold=0.02)))
    titles = [t.text for t in equivalence.iter("{http://www.w3.org/2000/svg}title")]
    assert "threshold -0.02" in titles and "threshold 0.02" in titles
    assert histogram_svg(record(histogram=None)) == ""


def test_terminal_table_aligns_columns():
    lines = render_terminal(RunReport(run=RUN, claims=(record(), record("H2-long-name", verdict="inconclusive"))))
    assert lines[0].split() == ["claim", "verdict", "estimate", "[CI]", "n", "p", "p", "adj", "needed", "selected"]
    assert len({line.index("0.2 [") for line in lines[2:]}) == 1


def test_a_skipped_claim_shows_its_reason_in_every_format():
    reason = "applies to custom_cnn; the policy under test is impala"
    skipped = record("H-custom", verdict="skipped", message=reason, estimate=None, ci_low=None, ci_high=None,
                     p_value=None, p_adjusted=None, histogram=None)
    report = RunReport(run=RUN, claims=(record(), skipped))
    lines = render_terminal(report)
    assert lines[3].startswith("H-custom") and "SKIPPED" in lines[3]
    assert lines[-2:] == ["skipped:", f"  H-custom: {reason}"]
    assert "### H-custom: skipped" in render_markdown(report) and reason in render_markdown(report)
    assert reason in render_html(report)
    assert render_terminal(RunReport(run=RUN, claims=(record(),)))[-1].startswith("H1")  # no section without skips


def test_comparison_reports_changed_verdicts_moved_estimates_and_new_bounds():
    previous = RunReport(run={"run": "r0"}, claims=(record("A"), record("B"), record("C"), record("Gone")))
    current = [
        record("A", verdict="refuted", estimate=0.05, ci_low=0.01, ci_high=0.07),
        record("B", estimate=0.3, ci_low=0.26, ci_high=0.34),
        record("C", threshold=0.2),
        record("D"),
        record("E"),
    ]
    comparison = compare_runs(previous, current)
    lines = comparison.lines()
    assert comparison.previous_run == "r0"
    assert "A: supported -> refuted; estimate 0.05 outside previous [0.15, 0.25]" in lines
    assert "B: still supported; estimate 0.3 outside previous [0.15, 0.25]" in lines
    assert any(line.startswith("C: still supported; bound changed") for line in lines)
    assert "D: new claim (supported)" in lines and "Gone: not in this run (was supported)" in lines
    assert compare_runs(previous, previous.claims).lines() == ["no verdict changed and no estimate left its interval"]


def test_written_run_loads_back(tmp_path):
    report = RunReport(run=RUN, claims=(record(),))
    paths = write_report(report, tmp_path / "r1")
    assert sorted(p.name for p in paths) == ["claims.csv", "claims.json", "claims.md", "index.html"]
    assert not list((tmp_path / "r1").glob(".*.tmp"))
    loaded = load_run(tmp_path / "r1")
    assert loaded.claims == (replace(record(), figures=()),) and loaded.run == RUN
    with pytest.raises(ClaimError, match="cannot read a claims run"):
        load_run(tmp_path / "missing")


def test_the_selected_unit_shows_in_every_format(tmp_path):
    chosen = record(selected_on="selection", selected={"channel": 6})
    report = RunReport(run=RUN, claims=(chosen, record("H2")))
    assert "channel=6" in render_terminal(report)[2] and render_terminal(report)[3].endswith("–")
    markdown = render_markdown(report)
    assert "| lower bound > 0.1 | channel=6 | confirmatory |" in markdown
    assert "seeds confirm; selected on selection: channel=6; test" in markdown
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [(r["selected_on"], r["selected"]) for r in rows] == [("selection", "channel=6"), ("", "")]
    assert "<th>selected</th><td>channel=6</td>" in render_html(report)
    data = json.loads(render_json(report))["claims"]
    assert [(r["selected_on"], r["selected"]) for r in data] == [("selection", {"channel": 6}), (None, {})]
    write_report(report, tmp_path)
    assert load_run(tmp_path).claims[0].selected == {"channel": 6}


def test_runs_saved_before_selection_was_recorded_still_load(tmp_path):
    old = {k: v for k, v in record().to_dict().items() if k not in ("selected_on", "selected", "figures")}
    (tmp_path / "claims.json").write_text(json.dumps({"run": RUN, "claims": [old]}))
    (row,) = load_run(tmp_path).claims
    assert (row.selected_on, row.selected, row.selection) == (None, {}, "–")


# --- pictures for claims (harness.claims.figures) -----------------------------------------------------------


def test_grid_and_upscale_lay_pictures_out_on_white():
    from harness.claims.figures import grid, side_by_side, upscale

    a, b = np.zeros((2, 3, 3), np.uint8), np.full((4, 2, 3), 7, np.uint8)
    big = upscale(a + 1, 3)
    assert big.shape == (6, 9, 3) and (big == 1).all()
    row = side_by_side([a, b], gap=1)
    assert row.shape == (4, 3 + 1 + 3, 3)  # cells as large as the largest picture
    assert (row[:2, :3] == 0).all() and (row[:, 4:6] == 7).all()
    assert (row[:, 3] == 255).all() and (row[2:, :3] == 255).all()
    assert grid([a, a, a], columns=2, gap=0).shape == (4, 6, 3)
    with pytest.raises(ClaimError, match="uint8 RGB"):
        grid([np.zeros((2, 2))], columns=1)
    with pytest.raises(ClaimError, match="positive int"):
        upscale(a, 0)


def test_feature_picture_puts_visualisations_left_of_examples():
    from harness.claims.figures import GAP, feature_picture

    vis = [np.full((4, 4, 3), 10, np.uint8)] * 2
    examples = [np.full((4, 4, 3), 200, np.uint8)] * 3
    picture = feature_picture(vis, examples, scale=2, columns=2)
    left = 2 * 8 + GAP  # two 8-pixel pictures and one gap
    assert picture.shape == (8 + GAP + 8, left + 4 * GAP + left, 3)
    assert (picture[:8, :8] == 10).all() and (picture[:8, left + 4 * GAP:left + 4 * GAP + 8] == 200).all()
    with pytest.raises(ClaimError, match="at least one"):
        feature_picture([], examples)


def test_pair_picture_outlines_the_edited_cell_on_both_levels():
    from harness.claims.figures import EDIT_COLOUR, changed_cells, mark_cells, pair_picture
    from harness.heist.engine import generate

    level = generate([3])[0]
    x0, y0, x1, y1 = level.maze_bounds
    cell = next((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
                if not level.is_wall((x, y)) and level.occupant((x, y)) is None)  # fmt: skip
    edited = level.add_wall(cell)
    assert changed_cells(level, edited) == [cell] and changed_cells(level, level) == []
    moved = level.move_gem(cell)
    assert changed_cells(level, moved) == sorted([level.gem.cell, cell], key=lambda c: (c[1], c[0]))
    picture = pair_picture(level, edited)
    assert picture.shape == (512, 2 * 512 + 12, 3)
    unit = 512 / level.world_dim
    top, left = round((level.world_dim - 1 - cell[1]) * unit), round(cell[0] * unit)
    for panel in (picture[:, :512], picture[:, 524:]):
        assert (panel[top, left + 5] == EDIT_COLOUR).all() and (panel[top + 5, left] == EDIT_COLOUR).all()
    outlined = mark_cells(np.zeros((90, 90, 3), np.uint8), level, [(0, 0)])  # bottom-left cell: rows 80..89
    assert (outlined[89, :10] == EDIT_COLOUR).all() and not outlined[:80].any()
    with pytest.raises(ClaimError, match="outside"):
        mark_cells(np.zeros((90, 90, 3), np.uint8), level, [(9, 0)])
