"""The fake object store behaves like GCS as Beam sees it: no folders, rename by copy, content checksums."""

from __future__ import annotations

import pytest
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from tests import fakeos


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(fakeos.ROOT_ENV, str(tmp_path))
    return "fakeos://bucket"


def _put(url: str, data: bytes) -> None:
    handle = FileSystems.create(url)
    handle.write(data)
    handle.close()


def test_objects_without_folders(store):
    _put(f"{store}/t/a.parquet", b"one")
    _put(f"{store}/t/sub/b.parquet", b"two")
    assert FileSystems.exists(f"{store}/t/a.parquet")
    assert not FileSystems.exists(f"{store}/t")  # a prefix is not an object
    found = sorted(m.path for m in FileSystems.match([f"{store}/t/**"])[0].metadata_list)
    assert found == [f"{store}/t/a.parquet", f"{store}/t/sub/b.parquet"]
    assert [m.path for m in FileSystems.match([f"{store}/t/*.parquet"])[0].metadata_list] == [f"{store}/t/a.parquet"]
    with FileSystems.open(f"{store}/t/sub/b.parquet") as handle:
        assert handle.read() == b"two"


def test_rename_is_per_object_and_checksum_follows_content(store):
    _put(f"{store}/a", b"one")
    before = FileSystems.checksum(f"{store}/a")
    FileSystems.rename([f"{store}/a"], [f"{store}/x/b"])
    assert not FileSystems.exists(f"{store}/a")
    assert FileSystems.checksum(f"{store}/x/b") == before
    _put(f"{store}/x/b", b"two")
    assert FileSystems.checksum(f"{store}/x/b") != before
    _put(f"{store}/x/c", b"three")
    with pytest.raises(BeamIOError):
        FileSystems.rename([f"{store}/x"], [f"{store}/y"])  # no folder rename


def test_injected_failure(store, monkeypatch):
    monkeypatch.setattr(fakeos, "_calls", fakeos.Counter())
    monkeypatch.setenv(fakeos.FAIL_ENV, "rename:2")
    for name in "abc":
        _put(f"{store}/{name}", name.encode())
    FileSystems.rename([f"{store}/a"], [f"{store}/a2"])
    with pytest.raises(BeamIOError, match="injected rename failure"):
        FileSystems.rename([f"{store}/b"], [f"{store}/b2"])
    FileSystems.rename([f"{store}/c"], [f"{store}/c2"])
    FileSystems.delete([f"{store}/"])
    assert not FileSystems.match([f"{store}/**"])[0].metadata_list
