"""Symbols, disassembly and value formatting, without a running machine."""

from __future__ import annotations

import capstone
import pytest

from replayvm.debugger.disasm import Disassembler
from replayvm.debugger.expr import CHAR, ULONG, Value, address
from replayvm.debugger.format import RFLAGS_BITS, bits_text, c_string, char_text, memory_lines, value_text, watch_value
from replayvm.debugger.source import LineTable
from replayvm.debugger.symbols import SymbolTable
from replayvm.guests import catalog
from tests.elfimage import make_elf


@pytest.fixture(scope="module")
def demo_symbols() -> SymbolTable:
    return SymbolTable.from_elf(catalog.get("demo").image.read_bytes())


def test_names_resolve_to_addresses(demo_symbols: SymbolTable) -> None:
    kprintf = demo_symbols.lookup("kprintf")
    assert kprintf is not None and kprintf.kind == "func" and kprintf.size > 0
    assert demo_symbols.address_of("ticks") is not None
    assert demo_symbols.address_of("no_such_symbol") is None
    assert "kmain" in demo_symbols.names()


def test_addresses_resolve_to_function_and_offset(demo_symbols: SymbolTable) -> None:
    kprintf = demo_symbols.address_of("kprintf")
    assert kprintf is not None
    assert demo_symbols.symbolize(kprintf) == ("kprintf", 0)
    assert demo_symbols.symbolize(kprintf + 4) == ("kprintf", 4)
    assert demo_symbols.function_at(kprintf + 4).name == "kprintf"  # type: ignore[union-attr]


def test_data_addresses_resolve_only_among_all_symbols(demo_symbols: SymbolTable) -> None:
    ticks = demo_symbols.address_of("ticks")
    assert ticks is not None
    assert demo_symbols.symbolize(ticks) is None  # not code
    assert demo_symbols.symbolize(ticks + 2, code=False) == ("ticks", 2)


def test_addresses_past_a_sized_symbol_or_outside_sections_have_no_name(demo_symbols: SymbolTable) -> None:
    assert demo_symbols.symbolize(0x10) is None
    assert demo_symbols.symbolize(0xFFFF_FFFF_0000_0000, code=False) is None


@pytest.mark.parametrize("image", [b"", b"not an elf at all", make_elf()], ids=["empty", "garbage", "no-symtab"])
def test_images_without_symbols_give_an_empty_table(image: bytes) -> None:
    table = SymbolTable.from_elf(image)
    assert len(table) == 0
    assert table.problem
    assert table.symbolize(0x100000) is None
    assert table.lookup("kprintf") is None


def test_truncated_images_never_raise() -> None:
    image = catalog.get("demo").image.read_bytes()
    for cut in range(0, len(image), 977):
        SymbolTable.from_elf(image[:cut])
        LineTable.from_elf(image[:cut])


def test_bundled_images_have_no_line_information() -> None:
    table = LineTable.from_elf(catalog.get("demo").image.read_bytes())
    assert not table
    assert table.find(0x101780) is None


def test_disassembly_names_call_targets_and_rip_relative_data(demo_symbols: SymbolTable) -> None:
    disasm = Disassembler(demo_symbols)
    kprintf = demo_symbols.address_of("kprintf")
    ticks = demo_symbols.address_of("ticks")
    assert kprintf is not None and ticks is not None
    at = 0x102000
    call = b"\xe8" + (kprintf - (at + 5)).to_bytes(4, "little", signed=True)
    load = b"\x48\x8b\x05" + (ticks - (at + 5 + 7)).to_bytes(4, "little", signed=True)
    insns = disasm.decode(call + load + b"\x06\x07", at, 10)  # push es, pop es: invalid in 64-bit mode
    assert insns[0].text == f"call   {kprintf:#x} <kprintf>"
    assert insns[1].text.endswith(f"# {ticks:#x} <ticks>")
    assert [i.text for i in insns[2:]] == ["(bad)", "(bad)"]


def test_disassembly_follows_the_cpu_mode(demo_symbols: SymbolTable) -> None:
    disasm = Disassembler(demo_symbols)
    code = bytes.fromhex("0f0115" + "30401000")  # lgdt [0x104030] in 32-bit code
    assert disasm.decode(code, 0x100004, 1, bits=32)[0].text == "lgdt   [0x104030]"
    assert "rip" in disasm.decode(code, 0x100004, 1, bits=64)[0].text


def test_values_print_like_gdb(demo_symbols: SymbolTable) -> None:
    label = Disassembler(demo_symbols).label
    kprintf = demo_symbols.address_of("kprintf")
    assert kprintf is not None
    assert value_text(Value(-1), None, label) == "-1"
    assert value_text(Value(-1), "x", label) == "0xffffffffffffffff"
    assert value_text(Value(5), "t", label) == "101"
    assert value_text(Value(8), "o", label) == "010"
    assert value_text(Value(65, CHAR), None, label) == "65 'A'"
    assert value_text(address(kprintf + 4), None, label) == f"{kprintf + 4:#x} <kprintf+4>"
    assert value_text(Value(0x10, ULONG, None, True), "d", label) == "16"


def test_memory_lines_pad_hex_to_the_unit_and_label_each_line() -> None:
    lines = memory_lines(bytes(range(12)), 0x1000, "x", 4, lambda a: "<buf>" if a == 0x1000 else "")
    assert lines == ["0x1000 <buf>:\t0x03020100\t0x07060504\t0x0b0a0908"]
    assert memory_lines(b"\xff\x01", 0x10, "d", 1, lambda a: "") == ["0x10:\t-1\t1"]


def test_chars_strings_flags_and_watch_values() -> None:
    assert char_text(10) == "10 '\\n'"
    assert char_text(200) == "-56 '\\310'"
    assert c_string(b'say "hi"\n', truncated=True) == '"say \\"hi\\"\\n"...'
    assert bits_text(0x246, RFLAGS_BITS) == "[ PF ZF IF ]"
    assert watch_value((5).to_bytes(8, "little"), None) == "5"
    assert watch_value(None, None) == "<unreadable>"
    assert watch_value(bytes(3), None) == "{0x00, 0x00, 0x00}"


def test_capstone_is_the_disassembler() -> None:
    assert capstone.cs_version()[0] >= 5
