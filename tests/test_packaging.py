"""Cloud packaging, proven.

The sdist that ``--setup_file`` ships, a clean install that runs the job from outside
the repository, and a worker image that matches this Beam and Python.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import ROOT

INSTALL_TIMEOUT_S = 180  # measured: 60-80 s with a warm pip cache on 2 shared cores


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the source distribution exactly as Beam's stager does for --setup_file (setup.py sdist)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (archive,) = out.glob("tapefit-*.tar.gz")
    return archive


def test_sdist_ships_the_packages_and_nothing_else(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    shipped = ("pipeline/fit/fitter.py", "pipeline/fit/descent.py", "pipeline/table/bigquery.py", "jobs/fit_lines.py")
    for module in shipped:
        assert module in names
    assert {"setup.py", "README.md", "PKG-INFO"} <= names
    assert not [name for name in names if name.startswith(("tests", "sample_data", ".ci", "docs"))]
    assert not [name for name in names if name.endswith((".parquet", ".csv", ".dat"))]
    with tarfile.open(sdist) as archive:
        requires = archive.extractfile(f"{sdist.name[: -len('.tar.gz')]}/tapefit.egg-info/requires.txt").read()
    for dependency in (b"apache-beam", b"numpy", b"pyarrow", b"tensorflow", b"[gcp]"):
        assert dependency in requires


def test_installed_package_runs_the_job_from_outside_the_repo(sdist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", str(sdist)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    print(f"fresh install took {time.monotonic() - started:.0f} s")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import pipeline, jobs; print(pipeline.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(venv))  # the installed copy, not the repository
    done = subprocess.run(
        [str(venv / "bin/tapefit"), "--input", str(ROOT / "sample_data/files"), "--output", "table",
         "--run_date", "2026-01-02"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tapefit: 58 datasets" in done.stdout
    assert (elsewhere / "table/run_date=2026-01-02/_manifest.json").exists()


def test_dockerfile_matches_this_beam_and_python() -> None:
    text = (ROOT / "Dockerfile").read_text()
    beam = re.search(r"^ARG BEAM_VERSION=(\S+)$", text, re.M).group(1)
    base = re.search(r"^FROM (\S+)$", text, re.M).group(1)
    tensorflow = re.search(r"^ARG TENSORFLOW_VERSION=(\S+)$", text, re.M).group(1)
    assert beam == metadata.version("apache-beam")
    assert base == f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:${{BEAM_VERSION}}"
    assert tensorflow == metadata.version("tensorflow")
    assert "COPY pipeline" in text and "COPY jobs" in text and "COPY tests" not in text
