"""Finding the fetched Linux assets never downloads anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replayvm.guests import linux_assets
from replayvm.guests.linux_assets import MANIFEST, find_assets


def test_missing_directory_means_no_assets(tmp_path: Path) -> None:
    assert find_assets(tmp_path / "nothing") is None


def test_assets_are_found_only_when_every_file_is_there(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"kernel_package": "linux-image-x"}))
    for name in ("vmlinuz", "busybox"):
        (tmp_path / name).write_bytes(b"x")
    assert find_assets(tmp_path) is None
    (tmp_path / "initrd.cpio").write_bytes(b"x")
    assets = find_assets(tmp_path)
    assert assets is not None and assets.kernel_package == "linux-image-x"
    assert assets.vmlinuz == tmp_path / "vmlinuz"


def test_cache_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(linux_assets.ENV_DIR, str(tmp_path))
    assert linux_assets.default_dir() == tmp_path
