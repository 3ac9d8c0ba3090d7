"""Packaging for tapefit: installs `pipeline` and `jobs`; also Beam's --setup_file."""

import re
from pathlib import Path

from setuptools import find_packages, setup

_VERSION = re.search(
    r'__version__ = "([^"]+)"', (Path(__file__).parent / "pipeline" / "__init__.py").read_text()
).group(1)

setup(
    name="tapefit",
    version=_VERSION,
    description="Per-dataset GradientTape line fits over many Parquet datasets, as an Apache Beam job.",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pipeline", "pipeline.*", "jobs", "jobs.*"]),
    python_requires=">=3.10",
    install_requires=[
        "apache-beam>=2.60",
        "numpy>=1.26",
        "pyarrow>=15",
        "tensorflow>=2.16",
    ],
    extras_require={
        "report": ["matplotlib>=3.7"],
        # DuckDB's Parquet reader reads many small local files at once (pipeline/read/many_files.py).
        "fast": ["duckdb>=1.3"],
        "bench": ["duckdb>=1.3"],
        # Dataflow, GCS and BigQuery; `build` lets Beam package --setup_file quietly.
        "gcp": ["apache-beam[gcp]>=2.60", "build>=1.0"],
        # statsmodels and scikit-learn are independent references for the fit tests only.
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "duckdb>=1.3",
            "matplotlib>=3.7",
            "apache-beam[gcp]>=2.60",
            "build>=1.0",
            "statsmodels>=0.14",
            "scikit-learn>=1.4",
        ],
    },
    entry_points={"console_scripts": ["tapefit=jobs.fit_lines:console_main"]},
)
