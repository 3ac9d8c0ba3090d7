"""``make stress``: repeat real runs and account for every dataset, bit for bit.

Hunts the "lost datasets" event (a multi-process row-form run once finished with 66 of
1,000 datasets missing and no error): every round runs the real command over one input
in every combination of loss form (gram, rows), runner mode (in-process, 2 processes)
and batch size, and checks each run:

- it exits 0 and its partition holds exactly one row per input dataset, no other;
- its manifest counts every dataset, and lists exactly the files in the partition;
- its rows are bit-identical (every numeric column, status and error) to the first run
  of the same loss form: neither the runner nor the batching may change an answer.

Usage: ``python -m tests.stress [--rounds 3] [--datasets 1000] [--rows 500] [--work DIR]
[--forms gram,rows] [--extra "--loss huber"]`` (``--extra``: more tapefit flags for every
run; with ``--loss huber`` use ``--forms rows``, its only form).
It prints one line per run and a closing tally, and exits 1 if any run broke a rule.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
MODES = {"in-process": (), "2 processes": ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2")}
BATCHES = (7, 100, 2000)
# What a run's rows may differ in: who wrote them, and when.
_RUN_COLUMNS = ("run_id", "fitted_at")


def make_input(folder: Path, datasets: int, rows: int) -> list[str]:
    """Write ``datasets`` Parquet files of ``rows`` rows (seeded); return their ids."""
    rng = np.random.default_rng(2026)
    ids = []
    for i in range(datasets):
        x = rng.uniform(-10, 10, rows)
        y = rng.normal(0, 3) * x + rng.normal(0, 50) + rng.normal(0, rng.uniform(0.01, 5), rows)
        name = f"g{i // 100:02d}/d{i:05d}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": x, "y": y}), folder / f"{name}.parquet")
        ids.append(name)
    return ids


def check_run(table: Path, ids: list[str]) -> tuple[pa.Table | None, list[str]]:
    """The run's rows (sorted by dataset, without run columns) and the rules it broke."""
    problems = []
    partitions = sorted(table.glob("run_date=*"))
    if len(partitions) != 1:
        return None, [f"{len(partitions)} partitions"]
    manifest = json.loads((partitions[0] / "_manifest.json").read_text())
    on_disk = sorted(p.name for p in partitions[0].glob("*.parquet"))
    if on_disk != sorted(manifest["files"]):
        problems.append(f"files {on_disk} but the manifest lists {manifest['files']}")
    rows = pq.read_table([str(partitions[0] / name) for name in manifest["files"]])
    found = rows.column("dataset").to_pylist()
    lost, extra = sorted(set(ids) - set(found)), sorted(set(found) - set(ids))
    duplicated = len(found) - len(set(found))
    if lost or extra or duplicated:
        problems.append(f"lost {len(lost)} {lost[:3]}, extra {len(extra)} {extra[:3]}, duplicated {duplicated}")
    if manifest["counts"]["datasets"] != len(ids):
        problems.append(f"manifest counts {manifest['counts']['datasets']} datasets of {len(ids)}")
    rows = rows.drop_columns(list(_RUN_COLUMNS)).sort_by("dataset")
    return rows, problems


def _run(
    input_dir: Path, table: Path, form: str, mode: tuple[str, ...], batch: int, extra: tuple[str, ...] = ()
) -> tuple[int, str, float]:
    shutil.rmtree(table, ignore_errors=True)
    command = [sys.executable, "-m", "jobs.fit_lines", "--input", str(input_dir), "--output", str(table)]
    form_flag = ("--loss_form", form) if "huber" not in extra else ()
    command += ["--run_date", "2026-01-01", *form_flag, "--batch_size", str(batch), *mode, *extra]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return done.returncode, done.stderr.strip().splitlines()[-1:] or [""], time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; return 0 when every run kept every rule."""
    parser = argparse.ArgumentParser(prog="python -m tests.stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every combination (default 3)")
    parser.add_argument("--datasets", type=int, default=1000, help="datasets in the input (default 1000)")
    parser.add_argument("--rows", type=int, default=500, help="rows per dataset (default 500)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--forms", default="gram,rows", help="loss forms to run, comma-separated (default gram,rows)")
    parser.add_argument("--extra", default="", help='more tapefit flags for every run, e.g. "--loss huber"')
    args = parser.parse_args(argv)
    forms, extra = tuple(args.forms.split(",")), tuple(args.extra.split())
    work = args.work or Path(tempfile.mkdtemp(prefix="tapefit-stress-"))
    input_dir = work / "input"
    shutil.rmtree(input_dir, ignore_errors=True)
    ids = make_input(input_dir, args.datasets, args.rows)
    print(f"stress: {args.datasets} datasets × {args.rows} rows in {input_dir}; {args.rounds} round(s)", flush=True)
    references: dict[str, pa.Table] = {}
    runs = broken = 0
    for round_no, (form, (mode_name, mode), batch) in itertools.product(
        range(1, args.rounds + 1), itertools.product(forms, MODES.items(), BATCHES)
    ):
        code, last, seconds = _run(input_dir, work / "table", form, mode, batch, extra)
        runs += 1
        problems = [f"exit {code}: {last[0]}"] if code != 0 else []
        if code == 0:
            rows, problems = check_run(work / "table", ids)
            if rows is not None and form in references and not rows.equals(references[form]):
                problems.append("rows differ from the first run of this form")
            references.setdefault(form, rows)
        broken += bool(problems)
        verdict = "ok" if not problems else "BROKEN: " + "; ".join(problems)
        print(
            f"round {round_no} · {form:4} · {mode_name:11} · batch {batch:4} · {seconds:5.1f} s · {verdict}", flush=True
        )
    print(f"stress: {runs} runs of {len(ids):,} datasets each; {broken} run(s) broke a rule")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
