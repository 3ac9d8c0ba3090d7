"""Fixtures for the benchmark's tests: tiny workloads of every layout, generated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.workloads import Workload, ensure

TINY = {
    "file": Workload("S", "file", 7, 30, 7, eager_sample=2),
    "directory": Workload("L", "directory", 1, 10_000, 3, eager_sample=0),
    "column": Workload("K", "column", 9, 40, 2, eager_sample=2),
}


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Layout → input directory of its tiny workload."""
    cache = tmp_path_factory.mktemp("cache")
    return {layout: ensure(w, cache) for layout, w in TINY.items()}
