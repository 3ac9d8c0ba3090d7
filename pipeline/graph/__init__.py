"""The Beam pipeline graph: ``build(p, config)`` wires discover → read and reduce → fit → table."""

from pipeline.graph.build import build
from pipeline.graph.fit_datasets import FitDatasets

__all__ = ["FitDatasets", "build"]
