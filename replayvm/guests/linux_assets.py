"""Fetch the Linux test assets: Debian's cloud kernel and a busybox initramfs.

Distribution binaries are never committed (DESIGN.md §2). This module gets
them with the distribution's own tools, into a cache directory
(``$REPLAYVM_LINUX_DIR``, default ``~/.cache/replayvm/linux``):

* ``apt-get download`` the kernel image package that the
  ``linux-image-cloud-amd64`` metapackage depends on, and ``busybox-static``;
* ``dpkg-deb -x`` them, keeping ``vmlinuz`` and ``busybox``;
* build ``initrd.cpio`` with :mod:`replayvm.guests.initramfs` (default /init).

Usage (what CI runs; a second run with everything present does nothing)::

    python -m replayvm.guests.linux_assets [--dir DIR] [--force]

Tests call :func:`find_assets`, which never downloads: it returns ``None``
when the assets are absent, so they can skip with a clear reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from replayvm.guests.initramfs import build_initramfs

METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
ENV_DIR = "REPLAYVM_LINUX_DIR"
MANIFEST = "assets.json"
# How ReplayVM boots them (the tests, `demo --linux`, `bench --linux`): no other
# boot flag is needed, and 128 MiB leaves the shell room.
APPEND = "console=ttyS0"
MEMORY_MIB = 128


class AssetError(Exception):
    """The assets cannot be fetched (no apt, no network, unexpected package layout)."""


@dataclass(frozen=True, slots=True)
class LinuxAssets:
    directory: Path
    kernel_package: str

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def busybox(self) -> Path:
        return self.directory / "busybox"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.cpio"


def default_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path.home() / ".cache" / "replayvm" / "linux"


def find_assets(directory: Path | None = None) -> LinuxAssets | None:
    """The fetched assets, or None if any file is missing (never downloads)."""
    directory = directory or default_dir()
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        assets = LinuxAssets(directory, str(manifest["kernel_package"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if all(p.is_file() for p in (assets.vmlinuz, assets.busybox, assets.initrd)):
        return assets
    return None


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AssetError(f"{cmd[0]} is not installed (the Linux assets come from Debian packages)") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise AssetError(f"{' '.join(cmd)} failed: {detail[-1] if detail else f'status {proc.returncode}'}")
    return proc.stdout


def kernel_package() -> str:
    """The versioned image package the metapackage depends on (apt-cache depends)."""
    for attempt in range(2):
        try:
            out = _run(["apt-cache", "depends", METAPACKAGE])
        except AssetError:
            out = ""
        for line in out.splitlines():
            kind, _, name = line.strip().partition(": ")
            if kind == "Depends" and name.startswith("linux-image-"):
                return name
        if attempt == 0:
            _run(["apt-get", "update", "-qq"])  # a fresh machine has no package lists yet
    raise AssetError(f"apt-cache does not know {METAPACKAGE} (is this a Debian system with its main archive?)")


def _extract(deb: Path, into: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(into)])


def fetch(directory: Path | None = None, *, force: bool = False) -> LinuxAssets:
    directory = directory or default_dir()
    if not force:
        found = find_assets(directory)
        if found is not None:
            return found
    package = kernel_package()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        work = Path(tmp)
        # _apt cannot write into a root-only temp dir; the download then runs
        # unsandboxed as root, which apt allows with a warning.
        os.chmod(work, 0o755)
        _run(["apt-get", "download", "-q", package, BUSYBOX_PACKAGE], cwd=work)
        debs = {p.name.split("_")[0]: p for p in work.glob("*.deb")}
        if package not in debs or BUSYBOX_PACKAGE not in debs:
            raise AssetError(f"apt-get download did not produce {package} and {BUSYBOX_PACKAGE}")
        root = work / "root"
        _extract(debs[package], root)
        _extract(debs[BUSYBOX_PACKAGE], root)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        busybox = root / "bin" / "busybox"
        if len(kernels) != 1 or not busybox.is_file():
            raise AssetError(f"unexpected package contents: kernels {kernels}, busybox present: {busybox.is_file()}")
        shutil.copyfile(kernels[0], directory / "vmlinuz")
        shutil.copyfile(busybox, directory / "busybox")
    assets = LinuxAssets(directory, package)
    assets.initrd.write_bytes(build_initramfs(assets.busybox.read_bytes()))
    (directory / MANIFEST).write_text(json.dumps({"kernel_package": package, "busybox_package": BUSYBOX_PACKAGE}))
    return assets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m replayvm.guests.linux_assets",
        description="Fetch Debian's cloud kernel and busybox-static, and build the test initramfs.",
    )
    p.add_argument("--dir", type=Path, default=None, help=f"cache directory (default ${ENV_DIR} or {default_dir()})")
    p.add_argument("--force", action="store_true", help="fetch again even if the assets are present")
    args = p.parse_args(argv)
    try:
        assets = fetch(args.dir, force=args.force)
    except (AssetError, OSError) as e:
        print(f"linux_assets: {e}", file=sys.stderr)
        return 1
    print(
        f"linux_assets: {assets.kernel_package} in {assets.directory}: vmlinuz, busybox, initrd.cpio", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
