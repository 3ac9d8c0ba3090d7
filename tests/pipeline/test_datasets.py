"""Input discovery: roots, ids, ignored files, and the in-pipeline listing."""

from __future__ import annotations

import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.config.errors import ConfigError
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


IDS = ("a", "parts/p1/part-0", "parts/p1/part-1", "parts/p2/part-0", "sub/b c é")


def test_discover_one_dataset_per_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    with TestPipeline() as p:
        found = p | DiscoverDatasets(_config(tmp_path, batch_size=2))
        batches = found | beam.Filter(lambda e: isinstance(e, list))
        assert_that(batches | beam.Map(len), equal_to([2, 2, 1]), label="BatchSizes")
        assert_that(found | beam.Filter(lambda e: isinstance(e, Expected)), equal_to([Expected(IDS)]), label="Expected")
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


# ---- issue 14: inputs found, named and refused exactly as documented ----


def _rel(paths: list[str], root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_a_spark_folder_named_like_a_file_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "table.parquet"
    for name in ("part-00000.parquet", "part-00001.parquet", "_SUCCESS"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    layout = input_layout(str(folder))
    assert layout.root == str(folder)
    assert _rel(list_dataset_files(layout), folder) == ["part-00000.parquet", "part-00001.parquet"]
    assert input_layout(str(folder) + "/").root == str(folder)


def test_an_existing_path_with_brackets_is_taken_literally(tmp_path: Path) -> None:
    (tmp_path / "data[1]").mkdir()
    (tmp_path / "data[1]/a.parquet").write_bytes(b"")
    (tmp_path / "data1").mkdir()  # what the glob data[1] would match instead
    (tmp_path / "data1/wrong.parquet").write_bytes(b"")
    (tmp_path / "b[2].parquet").write_bytes(b"")
    layout = input_layout(str(tmp_path / "data[1]"))
    assert layout.root == str(tmp_path / "data[1]")
    assert _rel(list_dataset_files(layout), tmp_path) == ["data[1]/a.parquet"]
    assert _rel(list_dataset_files(input_layout(str(tmp_path / "b[2].parquet"))), tmp_path) == ["b[2].parquet"]
    # a pattern that names no existing path is still a glob; [[] is a literal bracket in it
    assert _rel(list_dataset_files(input_layout(str(tmp_path / "data[0-9]/*.parquet"))), tmp_path) == [
        "data1/wrong.parquet"
    ]
    assert _rel(list_dataset_files(input_layout(str(tmp_path / "data[[]1]/*.parquet"))), tmp_path) == [
        "data[1]/a.parquet"
    ]


def test_a_glob_matches_names_with_a_backslash(tmp_path: Path) -> None:
    for name in ("a.parquet", "b\\c.parquet"):
        (tmp_path / name).write_bytes(b"")
    assert _rel(list_dataset_files(input_layout(str(tmp_path / "*.parquet"))), tmp_path) == [
        "a.parquet",
        "b\\c.parquet",
    ]


def _linked_tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "real").mkdir(parents=True)
    (root / "real/a.parquet").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/b.parquet").write_bytes(b"")
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "real/loop").symlink_to(root, target_is_directory=True)
    (root / "gone.parquet").symlink_to(tmp_path / "no-such-file.parquet")
    return root


def test_symlinked_folders_are_followed_and_what_cannot_be_read_is_named(tmp_path: Path) -> None:
    from pipeline.discover.layout import list_input

    root = _linked_tree(tmp_path)
    found = list_input(input_layout(str(root)))
    assert _rel([f.path for f in found.files], root) == ["linked/b.parquet", "real/a.parquet"]
    assert [(Path(path).relative_to(root).as_posix(), reason) for path, reason in found.skipped] == [
        ("gone.parquet", "dangling symbolic link"),
        ("real/loop", "symbolic link loop (it leads back to a folder above it)"),
    ]


def test_discovery_reports_the_ids_found_and_the_skipped_files(tmp_path: Path) -> None:
    root = _linked_tree(tmp_path)
    with TestPipeline() as p:
        found = p | DiscoverDatasets(_config(root))
        assert_that(
            found | beam.Filter(lambda e: isinstance(e, Expected)),
            equal_to(
                [
                    Expected(
                        ("linked/b", "real/a"),
                        (
                            (str(root / "gone.parquet"), "dangling symbolic link"),
                            (str(root / "real/loop"), "symbolic link loop (it leads back to a folder above it)"),
                        ),
                    )
                ]
            ),
        )


@pytest.mark.parametrize("spelling", ["dot", "alias", "relative", "relative_input"])
def test_the_output_inside_the_input_is_excluded_however_it_is_spelled(tmp_path: Path, spelling: str) -> None:
    root = tmp_path / "in"
    (root / "out/run_date=2026-01-01").mkdir(parents=True)
    (root / "out/run_date=2026-01-01/part-0.parquet").write_bytes(b"")
    (root / "a.parquet").write_bytes(b"")
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    given, output = str(root), str(root / "out")
    if spelling == "dot":
        output = f"{root}/./out"
    elif spelling == "alias":
        output = str(tmp_path / "alias/out")
    elif spelling == "relative":
        output = os.path.relpath(root / "out")
    else:
        given = os.path.relpath(root)
    assert [Path(p).name for p in list_dataset_files(input_layout(given, output))] == ["a.parquet"]


@pytest.mark.parametrize("inside", ["same", "below"])
def test_an_input_inside_the_output_table_is_refused_with_the_reason(tmp_path: Path, inside: str) -> None:
    table = tmp_path / "table"
    (table / "run_date=2026-01-01").mkdir(parents=True)
    (table / "run_date=2026-01-01/part-0.parquet").write_bytes(b"")
    given = table if inside == "same" else table / "run_date=2026-01-01"
    with pytest.raises(ConfigError, match="lies inside the output table"):
        list_dataset_files(input_layout(str(given), f"{tmp_path}/./table"))


def test_ids_that_collide_become_one_failed_dataset_naming_both_files(tmp_path: Path) -> None:
    for name in ("a.parquet", "a.PARQUET", "b.parquet"):
        (tmp_path / name).write_bytes(b"")
    root = str(tmp_path)
    with TestPipeline() as p:
        found = p | DiscoverDatasets(_config(tmp_path))
        assert_that(
            found | beam.FlatMap(_refs) | beam.Map(lambda ref: (ref.dataset, ref.paths, ref.error)),
            equal_to(
                [
                    (
                        "a",
                        (f"{root}/a.PARQUET", f"{root}/a.parquet"),
                        "2 files have the dataset id 'a': a.PARQUET, a.parquet (an id is the path without "
                        "its .parquet suffix, in any case); rename all but one",
                    ),
                    ("b", (f"{root}/b.parquet",), None),
                ]
            ),
            label="Refs",
        )
        assert_that(
            found | beam.Filter(lambda e: isinstance(e, Expected)), equal_to([Expected(("a", "b"))]), label="Ids"
        )


def test_remote_paths_are_compared_as_normalized_urls_without_a_lookup() -> None:
    from pipeline.discover.files import normalize, within

    assert normalize("gs://b/in/./out/") == normalize("gs://b/in//x/../out") == "gs://b/in/out"
    assert within(normalize("gs://b/in/out/run_date=1/p.parquet"), normalize("gs://b/in/./out"))
    assert not within("gs://b/in/outside/p.parquet", "gs://b/in/out")
    layout = input_layout("gs://b/in", "gs://b/in/./out/")  # a folder: nothing to look up
    assert (layout.root, layout.pattern) == ("gs://b/in", "gs://b/in/**")
    assert not layout.accepts("gs://b/in/out/run_date=2026-01-01/part-0.parquet")
    assert layout.accepts("gs://b/in/a/b.PARQUET") and not layout.accepts("gs://b/in/_tmp/b.parquet")
