"""Shared fixtures: Parquet writers, a compiled fitter and a numpy reference fit."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "sample_data" / "reference"


def write_parquet(path: Path, **columns: object) -> Path:
    """Write ``columns`` (arrays or pyarrow arrays) as a Parquet file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def lstsq(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Closed-form least squares (numpy's SVD solver): the independent reference."""
    x = np.asarray(x, dtype=np.float64)
    (w, b), *_ = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), np.asarray(y, np.float64), rcond=None)
    return float(w), float(b)


def norris() -> tuple[np.ndarray, np.ndarray]:
    """NIST StRD Norris: (x, y), 36 observations (data on lines 61-96: ``y x``)."""
    lines = (REFERENCE / "Norris.dat").read_text().splitlines()[60:96]
    values = np.array([[float(v) for v in line.split()] for line in lines])
    return values[:, 1], values[:, 0]


@pytest.fixture(scope="session")
def fitter():
    """The default-configured compiled fitter, built once for the whole session."""
    from pipeline.config.settings import FitConfig
    from pipeline.fit import LineFitter

    return LineFitter(FitConfig())


@functools.cache
def fitter_for(config: object) -> object:
    """One compiled fitter per FitConfig for the whole session: XLA compiles each shape once, not per test."""
    from pipeline.fit import LineFitter

    return LineFitter(config)
