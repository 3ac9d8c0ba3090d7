"""Input discovery: roots, ids, ignored files, and the in-pipeline listing."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.config.settings import FitConfig, JobConfig
from pipeline.discover.layout import DatasetRef, input_layout, list_dataset_files
from pipeline.discover.listing import DiscoverDatasets, Expected
from tests.pipeline.test_options import NOW


@pytest.mark.parametrize(
    ("given", "root", "pattern"),
    [
        ("data", "data", "data/**"),
        ("data/", "data", "data/**"),
        ("gs://bucket/in", "gs://bucket/in", "gs://bucket/in/**"),
        ("data/2024-*/part*.parquet", "data", "data/2024-*/part*.parquet"),
        ("data/a/*.parquet", "data/a", "data/a/*.parquet"),
        ("data/one.parquet", "data", "data/one.parquet"),
    ],
)
def test_layout_root_and_pattern(given: str, root: str, pattern: str) -> None:
    layout = input_layout(given)
    assert (layout.root, layout.pattern) == (root, pattern)


def test_accepts_only_visible_parquet_outside_the_output() -> None:
    layout = input_layout("/in", output="/in/out")
    assert layout.accepts("/in/a.parquet") and layout.accepts("/in/x/b c é.parquet")
    assert not layout.accepts("/in/notes.txt")
    assert not layout.accepts("/in/_SUCCESS")
    assert not layout.accepts("/in/_tmp/a.parquet")
    assert not layout.accepts("/in/.hidden/a.parquet")
    assert not layout.accepts("/in/out/run_date=2026-01-01/part.parquet")
    assert layout.accepts("/in/outside.parquet")


def _tree(root: Path) -> None:
    for name in ("a.parquet", "sub/b c é.parquet", "parts/p1/part-0.parquet", "parts/p1/part-1.parquet",
                 "parts/p2/part-0.parquet", "notes.txt", "parts/p1/_SUCCESS"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _config(root: Path, group_by: str = "file", loss_form: str = "gram", batch_size: int = 2000) -> JobConfig:
    return JobConfig(
        input=str(root), output=str(root / "out"), run_date="2026-01-01", group_by=group_by, key_column=None,
        x_column="x", y_column="y", fit=FitConfig(loss_form=loss_form), run_id="r", started_at=NOW,
        batch_size=batch_size,
    )  # fmt: skip


def _refs(element: object) -> list:
    return element if isinstance(element, list) else []


def test_list_dataset_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list_dataset_files(input_layout(str(tmp_path)))
    assert [Path(p).relative_to(tmp_path).as_posix() for p in found] == [
        "a.parquet", "parts/p1/part-0.parquet", "parts/p1/part-1.parquet", "parts/p2/part-0.parquet",
        "sub/b c é.parquet",
    ]  # fmt: skip


def test_discover_one_dataset_per_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    with TestPipeline() as p:
        found = p | DiscoverDatasets(_config(tmp_path, batch_size=2))
        batches = found | beam.Filter(lambda e: isinstance(e, list))
        assert_that(batches | beam.Map(len), equal_to([2, 2, 1]), label="BatchSizes")
        assert_that(found | beam.Filter(lambda e: isinstance(e, Expected)), equal_to([Expected(5)]), label="Expected")
        refs = batches | beam.FlatMap(lambda batch: batch)
        assert_that(
            refs | beam.Map(lambda ref: (ref.dataset, ref.source == ref.paths[0], len(ref.paths))),
            equal_to(
                [
                    ("a", True, 1),
                    ("sub/b c é", True, 1),
                    ("parts/p1/part-0", True, 1),
                    ("parts/p1/part-1", True, 1),
                    ("parts/p2/part-0", True, 1),
                ]
            ),  # fmt: skip
            label="Ids",
        )


def test_discover_one_dataset_per_directory(tmp_path: Path) -> None:
    _tree(tmp_path)
    root = str(tmp_path)
    with TestPipeline() as p:
        refs = p | DiscoverDatasets(_config(tmp_path, "directory", "rows")) | beam.FlatMap(_refs)
        assert_that(
            refs,
            equal_to(
                [
                    DatasetRef(".", root, (f"{root}/a.parquet",)),
                    DatasetRef("sub", f"{root}/sub", (f"{root}/sub/b c é.parquet",)),
                    DatasetRef(
                        "parts/p1",
                        f"{root}/parts/p1",
                        (f"{root}/parts/p1/part-0.parquet", f"{root}/parts/p1/part-1.parquet"),
                    ),
                    DatasetRef("parts/p2", f"{root}/parts/p2", (f"{root}/parts/p2/part-0.parquet",)),
                ]
            ),  # fmt: skip
            label="Directories",
        )


def test_discover_directory_parts_one_by_one_for_gram(tmp_path: Path) -> None:
    _tree(tmp_path)
    root = str(tmp_path)
    with TestPipeline() as p:
        refs = p | DiscoverDatasets(_config(tmp_path, "directory")) | beam.FlatMap(_refs)
        assert_that(
            refs | beam.Map(lambda ref: (ref.dataset, ref.source, ref.paths)),
            equal_to(
                [
                    (".", root, (f"{root}/a.parquet",)),
                    ("sub", f"{root}/sub", (f"{root}/sub/b c é.parquet",)),
                    ("parts/p1", f"{root}/parts/p1", (f"{root}/parts/p1/part-0.parquet",)),
                    ("parts/p1", f"{root}/parts/p1", (f"{root}/parts/p1/part-1.parquet",)),
                    ("parts/p2", f"{root}/parts/p2", (f"{root}/parts/p2/part-0.parquet",)),
                ]
            ),  # fmt: skip
        )
