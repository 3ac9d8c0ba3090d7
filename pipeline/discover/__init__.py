"""Stage 1, find the datasets: list the input once and group its files into datasets."""

from pipeline.discover.layout import DatasetRef, InputLayout, input_layout, list_dataset_files, list_input
from pipeline.discover.listing import DiscoverDatasets, Expected

__all__ = [
    "DatasetRef",
    "DiscoverDatasets",
    "Expected",
    "InputLayout",
    "input_layout",
    "list_dataset_files",
    "list_input",
]
