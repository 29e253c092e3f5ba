"""Source lines from DWARF: a bundled guest rebuilt with -g, recorded, listed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from replayvm.guests import build
from tests.debugger.conftest import Driven, record

HELLO_SOURCE = build.SRC_DIR / "hello.c"


@pytest.fixture(scope="module")
def hello_g(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build a guest with debug information")
    out = tmp_path_factory.mktemp("hello-g")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "CFLAGS", (*build.CFLAGS, "-g"))
        (image,) = build.build(["hello"], out)
    with pytest.MonkeyPatch.context() as mp:
        from replayvm.guests import catalog

        mp.setattr(catalog.Guest, "image", property(lambda self: image))
        return record(out / "hello.rvr", "hello")


def kmain_line() -> int:
    lines = HELLO_SOURCE.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.startswith("int kmain("))


def test_list_shows_the_source_around_a_function(hello_g: Path) -> None:
    d = Driven(hello_g)
    text = d.run("list kmain")
    source = HELLO_SOURCE.read_text().splitlines()
    lines = text.splitlines()
    assert len(lines) == 10
    first = int(lines[0].split("\t")[0])
    assert lines == [f"{n}\t{source[n - 1]}" for n in range(first, first + 10)]
    assert f"{kmain_line()}\tint kmain(" in text
    more = d.run("list")  # goes on where the last listing stopped
    assert more.splitlines()[0].startswith(f"{first + 10}\t")


def test_stops_and_backtraces_name_file_and_line(hello_g: Path) -> None:
    d = Driven(hello_g)
    line = next(i for i, t in enumerate(HELLO_SOURCE.read_text().splitlines(), 1) if '"hello: bye' in t)
    assert re.fullmatch(
        r"Breakpoint 1 at 0x[0-9a-f]+ <kmain\+\d+>: file \./src/hello\.c, line \d+\.\n", d.run(f"break hello.c:{line}")
    )
    out = d.run("continue")
    assert re.search(rf"in kmain \(\) at \./src/hello\.c:{line} \[icount \d+\]\n{line}\t.*hello: bye", out)
    assert re.search(r"^#1  0x[0-9a-f]{16} in sdk_main \(\) at \./sdk/boot\.c:\d+$", d.run("bt"), re.MULTILINE)


def test_list_of_an_address_without_lines_says_so(hello_g: Path) -> None:
    d = Driven(hello_g)
    assert d.error("list *0x10").startswith("No line number information available for address 0x10")
