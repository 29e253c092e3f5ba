"""Build the bundled guest kernels with the system gcc.

    python -m replayvm.guests.build [--out DIR] [--cc GCC] [NAME ...]

Each ``src/NAME.c`` is linked with the SDK (``sdk/``) into ``NAME.elf``, a
PVH ELF kernel at 1 MiB (see ``sdk/linker.ld``). The SDK's optional drivers
(``sdk/virtio*.c``) are linked from a static archive, so only the guests
that call them contain them.  The build is
deterministic: sources are passed by relative path from this directory,
``-ffile-prefix-map`` maps it to ``.``, there is no debug information, no
build id and no ``.comment``, so the same sources and the same toolchain
give the same bytes.  Symbols are kept (not stripped) for the debugger.
The toolchain is recorded in ``TOOLCHAIN`` next to the images, so a test
can tell "different compiler" from "not reproducible".
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from replayvm.errors import ConfigError

GUESTS_DIR = Path(__file__).resolve().parent
SDK_DIR = GUESTS_DIR / "sdk"
SRC_DIR = GUESTS_DIR / "src"
IMAGES_DIR = GUESTS_DIR / "images"
TOOLCHAIN_FILE = "TOOLCHAIN"

CFLAGS = (
    "-std=gnu11",
    "-O2",
    "-m64",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-common",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-fno-omit-frame-pointer",  # lets a debugger walk the stack through RBP
    "-mno-red-zone",  # interrupt frames are pushed below RSP
    "-mgeneral-regs-only",  # no SSE/MMX/x87: start.S leaves them unset up
    "-Wall",
    "-Wextra",
    "-Isdk",
    f"-ffile-prefix-map={GUESTS_DIR}=.",
)

LDFLAGS = (
    "-nostdlib",
    "-static",
    "-no-pie",
    "-Wl,-T,sdk/linker.ld",
    "-Wl,--build-id=none",
    "-Wl,-z,max-page-size=0x1000",
    "-Wl,-z,noexecstack",
)

ELF_PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


# SDK drivers that only some guests use (``sdk/virtio*.c``) go into a static
# archive linked after the guest, so the linker pulls in just what a guest
# calls and every other image stays exactly as it was.
LIBRARY_PREFIXES = ("virtio",)
LIBRARY_NAME = "libsdk-drivers.a"


def _is_library(name: str) -> bool:
    return name.startswith(LIBRARY_PREFIXES)


def sdk_sources() -> list[str]:
    """Core SDK sources relative to GUESTS_DIR, start.S first (it holds the entry)."""
    names = sorted(p.name for p in SDK_DIR.iterdir() if p.suffix in (".c", ".S") and not _is_library(p.name))
    names.remove("start.S")
    return ["sdk/start.S"] + [f"sdk/{n}" for n in names]


def sdk_library_sources() -> list[str]:
    """Optional SDK drivers, archived into LIBRARY_NAME."""
    return [f"sdk/{p.name}" for p in sorted(SDK_DIR.iterdir()) if p.suffix == ".c" and _is_library(p.name)]


def guest_names() -> list[str]:
    return sorted(p.stem for p in SRC_DIR.glob("*.c"))


def find_compiler(cc: str) -> str:
    path = shutil.which(cc)
    if path is None:
        raise ConfigError(
            f"cannot build guests: C compiler {cc!r} not found on PATH "
            "(install gcc, e.g. 'apt-get install gcc', or pass --cc)"
        )
    return path


def _first_line(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip() if out else ""


def toolchain_id(cc: str) -> str:
    """One line per tool: what decides the bytes of the images."""
    ld = _first_line([cc, "-print-prog-name=ld"]) or "ld"
    return f"{_first_line([cc, '--version'])}\n{_first_line([ld, '--version'])}\n"


def pvh_entry(elf: bytes) -> int:
    """The XEN_ELFNOTE_PHYS32_ENTRY address in an ELF64 file's PT_NOTE segments."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not an ELF64 file")
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != ELF_PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", elf, pos)
            name_at = pos + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            name = elf[name_at : name_at + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == XEN_ELFNOTE_PHYS32_ENTRY:
                return int.from_bytes(elf[desc_at : desc_at + descsz], "little") & 0xFFFFFFFF
            pos = desc_at + (descsz + 3) // 4 * 4
    raise ValueError("no Xen PHYS32_ENTRY note in a PT_NOTE segment")


def _archiver(cc: str) -> str:
    """The ``ar`` that goes with the compiler (``D``: deterministic, no timestamps)."""
    name = _first_line([cc, "-print-prog-name=ar"]) or "ar"
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"cannot build guests: archiver {name!r} not found on PATH (install binutils)")
    return path


def _run(argv: list[str]) -> None:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(argv, cwd=GUESTS_DIR, env=env, capture_output=True, text=True, check=False)
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise ConfigError(f"guest build failed: {' '.join(argv)}")


def _object_name(source: str) -> str:
    return source.replace("/", "_").rsplit(".", 1)[0] + ".o"


def build(names: list[str], out_dir: Path, cc: str = "gcc") -> list[Path]:
    """Compile the named guests into out_dir/NAME.elf; returns the paths."""
    compiler = find_compiler(cc)
    known = guest_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown guest {unknown[0]!r} (known: {', '.join(known)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="replayvm-guests-") as tmp:
        sdk_objects = []
        for source in sdk_sources():
            obj = str(Path(tmp, _object_name(source)))
            _run([compiler, *CFLAGS, "-c", source, "-o", obj])
            sdk_objects.append(obj)
        library = []
        library_objects = []
        for source in sdk_library_sources():
            obj = str(Path(tmp, _object_name(source)))
            _run([compiler, *CFLAGS, "-c", source, "-o", obj])
            library_objects.append(obj)
        if library_objects:
            library = [str(Path(tmp, LIBRARY_NAME))]
            _run([_archiver(compiler), "rcsD", library[0], *library_objects])
        for name in names:
            source = f"src/{name}.c"
            obj = str(Path(tmp, _object_name(source)))
            _run([compiler, *CFLAGS, "-c", source, "-o", obj])
            linked = Path(tmp, f"{name}.elf")
            _run([compiler, *LDFLAGS, *sdk_objects, obj, *library, "-lgcc", "-o", str(linked)])
            pvh_entry(linked.read_bytes())
            target = out_dir / f"{name}.elf"
            shutil.copyfile(linked, target)
            os.chmod(target, 0o644)
            built.append(target)
    (out_dir / TOOLCHAIN_FILE).write_text(toolchain_id(compiler))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replayvm.guests.build",
        description="Build the bundled PVH guest kernels with the system gcc.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="guests to build (default: all)")
    parser.add_argument("--out", type=Path, default=IMAGES_DIR, help=f"output directory (default: {IMAGES_DIR})")
    parser.add_argument("--cc", default="gcc", help="the gcc to use (default: gcc)")
    args = parser.parse_args(argv)
    try:
        for path in build(args.names or guest_names(), args.out, args.cc):
            print(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
