"""``tapefit report`` end to end: tables made by the real job, the HTML parsed, the page rendered in Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.report import ReportSettings, build_report
from pipeline.table.partitions import load_partition
from pipeline.table.schema import SCHEMA
from tests.conftest import ROOT, write_parquet
from tests.jobs.test_fit_lines import run_job

DATE = "2026-01-01"
SECTIONS = ["summary", "problems", "distributions", "fits", "changes"]
ODD_ID = 'odd/<img src=x onerror=alert(1)> & "q"'  # a file name that is also HTML


def run_report(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m jobs.report`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.report", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tags: set[str] = set()
        self.images: list[tuple[str, str, str]] = []  # (section, src, alt)
        self.links: list[str] = []
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []  # (section, header, rows)
        self.text: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag in ("header", "section"):
            self.sections.append(found["id"])
            self.text[found["id"]] = ""
        elif tag == "img":
            self.images.append((self.sections[-1], found.get("src") or "", found.get("alt") or ""))
        elif tag in ("a", "link", "script", "iframe", "object", "embed") or "href" in found:
            self.links.append(found.get("href") or found.get("src") or tag)
        elif tag == "table":
            self.tables.append((self.sections[-1], [], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            _, header, rows = self.tables[-1]
            if header:
                rows.append(self._row)
            else:
                header.extend(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self.sections:
            self.text[self.sections[-1]] += data

    def table(self, section: str, *columns: str) -> list[dict[str, str]]:
        """The rows, as dicts by header, of the one table of ``section`` whose header starts with ``columns``."""
        [(header, rows)] = [(h, r) for s, h, r in self.tables if s == section and tuple(h[: len(columns)]) == columns]
        return [dict(zip(header, cells, strict=True)) for cells in rows]


def png_size(uri: str) -> tuple[int, int]:
    """Width and height of a ``data:image/png;base64,`` URI's image (asserts it is one)."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    data = base64.b64decode(uri[len(prefix) :], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_self_contained(page: Page) -> None:
    assert page.sections == SECTIONS
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert all(link.startswith("#") for link in page.links), page.links
    for _, src, alt in page.images:
        width, height = png_size(src)
        assert width >= 200 and height >= 150 and alt


@pytest.fixture(scope="module")
def sample_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The job's real output for sample_data/files (58 datasets: 50 ok, 8 failed)."""
    table = tmp_path_factory.mktemp("sample") / "table"
    done = run_job("--input", "sample_data/files", "--output", str(table), "--run_date", DATE)
    assert done.returncode == 0, done.stderr
    return table


@pytest.fixture(scope="module")
def every_status_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the textbook loop (--no_standardize) that ends in every status."""
    root = tmp_path_factory.mktemp("statuses")
    rng = np.random.default_rng(11)
    for name, (low, high) in {
        "ok/a": (-1, 1), "ok/b": (-2, 2), "ok/c": (-1.5, 0.5),
        "slow/tiny_x": (0, 1e-3),  # curvature ~1e-6: crawls, not_converged
        "wild/big_x": (1000, 2000),  # curvature ~1e6: explodes, diverged
    }.items():  # fmt: skip
        x = rng.uniform(low, high, 300)
        slope = 2000.0 if name == "slow/tiny_x" else 1.5  # visibly sloped, yet the crawl stays flat
        write_parquet(root / f"{name}.parquet", x=x, y=slope * x + 0.5 + rng.normal(0, 0.1, 300))
    (root / "broken").mkdir()
    (root / "broken/corrupt.parquet").write_bytes(b"not parquet at all")
    write_parquet(root / f"{ODD_ID}.parquet", x=[2.0, 2.0, 2.0], y=[1.0, 2.0, 3.0])
    table = tmp_path_factory.mktemp("out") / "table"
    done = run_job("--input", str(root), "--output", str(table), "--run_date", DATE, "--no_standardize")
    assert done.returncode == 0, done.stderr
    return table


def _spiky(rng: np.random.Generator, n: int, w: float, b: float) -> dict[str, np.ndarray]:
    """A line with heteroscedastic noise (weights 1/variance) and 4% of y shifted up by 60–100 σ."""
    x = rng.uniform(0, 20, n)
    sd = 0.2 + 0.05 * x
    y = w * x + b + rng.normal(0, 1, n) * sd
    spikes = rng.choice(n, n // 25, replace=False)
    y[spikes] += rng.uniform(60, 100, spikes.size) * sd[spikes]
    return {"x": x, "y": y, "c": 1.0 / sd**2}


@pytest.fixture(scope="module")
def robust_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weighted datasets with gross outliers, one without the weight column (must fail)."""
    root = tmp_path_factory.mktemp("robust_in")
    rng = np.random.default_rng(21)
    for name, (w, b) in {"spiky/a": (1.5, 2.0), "spiky/b": (-0.5, 10.0), "spiky/c": (3.0, -4.0)}.items():
        write_parquet(root / f"{name}.parquet", **_spiky(rng, 800, w, b))
    write_parquet(root / "unweighted.parquet", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.5])
    return root


@pytest.fixture(scope="module")
def huber_table(robust_input: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real --loss huber --weight_column c run of :func:`robust_input`."""
    table = tmp_path_factory.mktemp("huber") / "table"
    done = run_job(
        "--input", str(robust_input), "--output", str(table), "--run_date", DATE, "--loss", "huber",
        "--weight_column", "c",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return table


def _card_texts(page: str) -> list[str]:
    """The text of every fit panel's card (its picture's alt text first), one string each."""
    cards = re.findall(r"<div class='card' style='border-left-color:[^']*'>(.*?)</div>", page.split("id='fits'")[1])
    texts = [re.sub(r"<[^>]+>", " ", re.sub(r"<img [^>]*alt='([^']*)'>", r"\1 ", card)) for card in cards]
    return [unescape(text) for text in texts]


def test_huber_weighted_report_shows_the_model_errors_scale_and_outliers(huber_table: Path) -> None:
    import statsmodels.api as sm

    done = run_report("--table", str(huber_table), "--panels", "2")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = (huber_table / f"run_date={DATE}" / "_report.html").read_text(encoding="utf-8")
    page = Page(text)
    check_self_contained(page)
    summary = page.text["summary"]
    assert "huber, ε = 1.35 (σ estimated jointly)" in summary and "column 'c'" in summary
    assert "y = w·x + b" in summary
    rows, _ = load_partition(huber_table / f"run_date={DATE}")
    fitted = {r["dataset"]: r for r in rows if r["status"] == "ok"}
    assert sorted(fitted) == ["spiky/a", "spiky/b", "spiky/c"]
    cards = _card_texts(text)
    assert len(cards) == 3 and "off by" not in page.text["fits"] and "for comparison" in page.text["fits"]
    for card in cards:
        name = next(n for n in fitted if f"scatter of {n} " in card)
        row = fitted[name]
        assert f"Huber σ {row['scale']:.6g}" in card and f"{row['n_outliers']:,} outliers (|r| > 1.35·σ)" in card
        assert "±" not in card  # no standard errors for huber
        data = pq.read_table(Path(row["source"])).to_pydict()
        x, y, c = (np.array(data[k]) for k in "xyc")
        params = sm.WLS(y, np.column_stack([x, np.ones_like(x)]), weights=c).fit().params
        shown = re.search(r"least squares, for comparison: w = (\S+), b = (\S+)", card)
        assert shown and [float(v) for v in shown.groups()] == pytest.approx(params, rel=1e-5)
        assert abs(row["w"] - params[0]) + abs(row["b"] - params[1]) > 0.1  # the spikes drag least squares
    fits = [alt for section, _, alt in page.images if section == "fits"]
    assert len(fits) == 3 and all(re.search(r"\d+ outliers marked", alt) for alt in fits), fits


def test_weighted_through_origin_report_lands_on_its_closed_form(
    robust_input: Path, huber_table: Path, tmp_path: Path
) -> None:
    table = tmp_path / "table"
    done = run_job(
        "--input", str(robust_input), "--output", str(table), "--run_date", DATE, "--weight_column", "c",
        "--no_intercept",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html, _ = build_report(table, None, ReportSettings(panels=3))
    page = Page(html)
    check_self_contained(page)
    assert "squared (least squares)" in page.text["summary"] and "y = w·x, through the origin" in page.text["summary"]
    cards = _card_texts(html)
    assert len(cards) == 3 and all("b = 0 (through the origin)" in card for card in cards)
    assert all(re.search(r"w = \S+ ± \S+ \(closed form", card) and "residual SE" in card for card in cards)
    gaps = [float(gap) for gap in re.findall(r"off by (\S+) rel", page.text["fits"])]
    assert len(gaps) == 3 and max(gaps) < 1e-9, gaps
    assert "weighted least squares through the origin" in page.text["fits"]
    # a huber run the next day: its changes say the fit itself changed
    shutil.copytree(huber_table / f"run_date={DATE}", table / "run_date=2026-01-02")
    page = Page(build_report(table, None, ReportSettings(panels=1))[0])
    assert "vs run_date=2026-01-01:" in page.text["summary"] and "(the fit changed)" in page.text["summary"]
    assert (
        "The fit itself changed (loss squared (least squares) → huber, ε = 1.35 (σ estimated jointly); "
        "model y = w·x, through the origin (b = 0) → y = w·x + b)"
    ) in page.text["changes"]


def test_partition_written_before_robust_fits_still_renders(sample_table: Path, tmp_path: Path) -> None:
    """An old partition: the 15 columns of the first schema, a manifest without the new fit options."""
    table = tmp_path / "table"
    folder = table / f"run_date={DATE}"
    folder.mkdir(parents=True)
    new = sample_table / f"run_date={DATE}"
    old_schema = pa.schema([SCHEMA.field(name) for name in SCHEMA.names[:15]])
    assert old_schema.names[-1] == "reused_from" and "scale" not in old_schema.names
    rows = pq.read_table(sorted(new.glob("*.parquet"))).select(old_schema.names).cast(old_schema)
    pq.write_table(rows, folder / "part-0.parquet")
    manifest = json.loads((new / "_manifest.json").read_text(encoding="utf-8"))
    for key in ("loss", "huber_epsilon", "intercept", "weights", "loss_form"):
        del manifest["options"]["fit"][key]
    manifest["files"] = ["part-0.parquet"]  # readers follow the manifest's file list
    (folder / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    done = run_report("--table", str(table))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    html = (folder / "_report.html").read_text(encoding="utf-8")
    page = Page(html)
    check_self_contained(page)
    assert "squared (least squares)" in page.text["summary"] and "none: every row weighs 1" in page.text["summary"]
    assert "±" not in page.text["fits"] and "cannot read" not in page.text["fits"]
    gaps = [float(gap) for gap in re.findall(r"off by (\S+) rel", page.text["fits"])]
    assert len(gaps) == 24 and max(gaps) < 1e-6, gaps
    # and show_results prints it without the new columns
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.show_results", "--table", str(table)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    header = shown.stdout.splitlines()[2].split()
    assert "scale" not in header and "w_stderr" not in header and len(shown.stdout.splitlines()) == 2 + 2 + 58


def test_sample_report_shows_the_run(sample_table: Path) -> None:
    done = run_report("--table", str(sample_table))
    out = sample_table / f"run_date={DATE}" / "_report.html"
    assert done.returncode == 0 and done.stderr == "" and str(out) in done.stdout, done.stderr
    page = Page(out.read_text(encoding="utf-8"))
    check_self_contained(page)
    rows, manifest = load_partition(out.parent)
    assert "58 datasets: 50 ok, 8 failed — 8 need attention" in page.text["summary"]
    assert (
        manifest["run_id"] in page.text["summary"]
        and "tensorflow " + manifest["versions"]["tensorflow"] in (page.text["summary"])
    )
    assert "launch to commit" in page.text["summary"]
    failed = sorted(r["dataset"] for r in rows if r["status"] == "failed")
    listed = page.table("problems", "dataset")
    assert [r["dataset"] for r in listed] == failed
    assert {r["dataset"]: r["error"] for r in listed} == {r["dataset"]: r["error"] for r in rows if r["error"]}
    assert sum(int(r["datasets"]) for r in page.table("problems", "status")) == 8
    sections = [section for section, _, _ in page.images]
    assert sections.count("distributions") == 5 and sections.count("fits") == 12
    worst = sorted((r for r in rows if r["r2"] is not None), key=lambda r: r["r2"])[:6]
    fits = [alt for section, _, alt in page.images if section == "fits"]
    assert all(f"scatter of {r['dataset']} " in alt for r, alt in zip(worst, fits, strict=False))
    assert "off by" in page.text["fits"] and "cannot read" not in page.text["fits"]
    assert "nothing to compare with" in page.text["changes"]
    assert "squared (least squares)" in page.text["summary"] and "none: every row weighs 1" in page.text["summary"]
    cards = _card_texts(out.read_text(encoding="utf-8"))
    assert len(cards) == 12 and all(" ± " in card and "residual SE" in card for card in cards)


def test_every_status_report_escapes_ids_and_lists_each_problem(every_status_table: Path) -> None:
    html, folder = build_report(every_status_table, None, ReportSettings(panels=3))
    rows, _ = load_partition(folder)
    statuses = {r["dataset"]: r["status"] for r in rows}
    assert statuses == {
        "ok/a": "ok", "ok/b": "ok", "ok/c": "ok", "slow/tiny_x": "not_converged", "wild/big_x": "diverged",
        "broken/corrupt": "failed", ODD_ID: "failed",
    }  # fmt: skip
    page = Page(html)
    check_self_contained(page)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;" in html
    assert "7 datasets: 3 ok, 1 not converged, 1 diverged, 2 failed — 4 need attention" in page.text["summary"]
    listed = [(r["dataset"], r["status"]) for r in page.table("problems", "dataset")]
    assert listed == [("broken/corrupt", "failed"), (ODD_ID, "failed"), ("wild/big_x", "diverged"),
                      ("slow/tiny_x", "not converged")]  # fmt: skip
    fits = [alt for section, _, alt in page.images if section == "fits"]
    # 3 worst (the crawling one first) and the 1 ok dataset left; the diverged one has no r²
    assert len(fits) == 4 and fits[0].startswith("scatter of slow/tiny_x ")


def test_comparison_with_the_previous_partition(sample_table: Path, tmp_path: Path) -> None:
    table = tmp_path / "table"
    shutil.copytree(sample_table / f"run_date={DATE}", table / f"run_date={DATE}")
    (table / f"run_date={DATE}" / "_report.html").unlink(missing_ok=True)
    rows, _ = load_partition(table / f"run_date={DATE}")
    old = {r["dataset"]: dict(r) for r in rows}
    old["sensors/s01"]["w"] *= 1.5  # moved: now is 1/1.5 of before → -33%
    old["stores/store_02"]["b"] *= 1.001  # below the 1% threshold
    old["sensors/s02"].update(status="failed", w=None, b=None, error="no rows")
    del old["reference/norris"]  # new today
    old["gone/yesterday"] = dict(old["sensors/s03"], dataset="gone/yesterday")
    for date, payload in (("2025-12-31", list(old.values())), ("2025-11-30", rows[:3]), ("2026-02-01", rows[:3])):
        folder = table / f"run_date={date}"
        folder.mkdir()
        pq.write_table(pa.Table.from_pylist(payload, schema=SCHEMA), folder / "part-0.parquet")
    (table / "run_date=2025-12-31" / "_manifest.json").write_text(json.dumps({"run_id": "yesterday-run"}))
    out = tmp_path / "r.html"
    done = run_report("--table", str(table), "--run_date", DATE, "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = Page(out.read_text(encoding="utf-8"))
    check_self_contained(page)
    assert "Changes since 2025-12-31" in page.text["changes"] and "yesterday-run" in page.text["changes"]
    assert "vs run_date=2025-12-31: 1 moved, 1 changed status, 1 new, 1 gone" in page.text["summary"]
    [moved] = page.table("changes", "dataset", "status")
    assert moved["dataset"] == "sensors/s01" and moved["w change"] == "33.3%" and moved["b change"] == "0%"
    assert page.table("changes", "dataset", "before") == [
        {"dataset": "sensors/s02", "before": "failed", "now": "ok", "error now": ""}
    ]
    assert "New datasets (1)reference/norris" in page.text["changes"].replace("\n", "")
    assert "Gone datasets (1)gone/yesterday" in page.text["changes"].replace("\n", "")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize(("table_fixture", "images"), [("every_status_table", 9), ("huber_table", 8)])
def test_page_renders_in_headless_chromium_without_broken_images_or_console_errors(
    table_fixture: str, images: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    html, _ = build_report(request.getfixturevalue(table_fixture), None, ReportSettings(panels=3))
    probe = (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        " const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;"
        " const p = document.createElement('pre'); p.id = 'probe';"
        " p.textContent = JSON.stringify({images: imgs.length, broken: broken,"
        " width: document.documentElement.scrollWidth}); document.body.appendChild(p); });</script>"
    )
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    chromium = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                "--window-size=1280,4000"]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [*chromium, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probe_text = done.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    result = json.loads(probe_text)
    assert result == {"images": images, "broken": 0, "width": 1280}, result
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    shot = Path(os.environ.get("TAPEFIT_REPORT_SCREENSHOT", tmp_path / "report.png"))
    subprocess.run(
        [*chromium, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, env=env, check=True
    )
    assert shot.stat().st_size > 50_000


def test_cli_errors_are_one_line_with_exit_2(sample_table: Path, tmp_path: Path) -> None:
    cases = [
        (["--table", str(tmp_path / "nope")], "no such table directory"),
        (["--table", str(sample_table), "--run_date", "2020-01-01"], "no partition run_date=2020-01-01"),
        (["--table", str(tmp_path)], "no run_date=* partition"),
        (["--table", str(sample_table), "--change_threshold", "-1"], "expected a number >= 0"),
        (["--table", str(sample_table), "--out", str(tmp_path / "no/such/dir/r.html")], "cannot write"),
        ([], "the following arguments are required: --table"),
    ]
    for args, message in cases:
        done = run_report(*args)
        assert done.returncode == 2 and done.stdout == "", (args, done)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("tapefit report: error: ") and message in done.stderr, done.stderr


def test_tapefit_report_subcommand_and_missing_matplotlib(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "tapefit"
    done = subprocess.run(
        [str(command), "report", "--table", str(tmp_path / "x")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "tapefit report: error: no such table directory" in done.stderr
    helped = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False)
    assert "tapefit report --table TABLE_DIR" in helped.stdout
    probe = (
        "import sys; sys.modules['matplotlib'] = None; from jobs.report import main; sys.exit(main(['--table', '.']))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr == (
        "tapefit report: error: matplotlib is not installed; pip install 'tapefit[report]'\n"
    )
