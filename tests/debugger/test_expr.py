"""The expression language: precedence, names, memory, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replayvm.debugger.expr import (
    LONG,
    MAX_DEPTH,
    Deref,
    ExprError,
    Reg,
    Value,
    address,
    evaluate,
    integer,
    parse,
    parse_assignment,
)


class FakeContext:
    """Registers, symbols and memory from dicts."""

    def __init__(self) -> None:
        self.regs = {"rax": 5, "rbx": 0xFFFF_FFFF_FFFF_FFFF, "rip": 0x101780, "rsp": 0x10EF78}
        self.symbols = {"kprintf": 0x101780, "ticks": 0x142648, "words.0": 0x132640}
        self.memory = {0x142648 + i: b for i, b in enumerate((3).to_bytes(8, "little"))}
        self.memory |= {0x1000 + i: b for i, b in enumerate(bytes([0xFF, 0xFE, 0x01, 0x80, 0, 0, 0, 0]))}
        self.values: list[Value] = []

    def register(self, name: str) -> Value:
        if name not in self.regs:
            raise ExprError(f'Invalid register "${name}".')
        return address(self.regs[name]) if name in ("rip", "rsp") else integer(self.regs[name])

    def symbol(self, name: str) -> Value:
        if name not in self.symbols:
            raise ExprError(f'No symbol "{name}" in current context.', symbol=name)
        return address(self.symbols[name])

    def read(self, addr: int, size: int) -> bytes:
        try:
            return bytes(self.memory[addr + i] for i in range(size))
        except KeyError:
            raise ExprError(f"Cannot access memory at address {addr:#x}") from None

    def history(self, index: int, relative: bool) -> Value:
        if relative:
            if index >= len(self.values):
                raise ExprError("History is empty.")
            return self.values[-1 - index]
        if not 1 <= index <= len(self.values):
            raise ExprError(f"History has not yet reached ${index}.")
        return self.values[index - 1]


def value(text: str, ctx: FakeContext | None = None) -> int:
    return evaluate(text, ctx or FakeContext()).value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("100 / 10 / 5", 2),
        ("1 << 2 + 1", 8),
        ("1 | 2 ^ 3 & 6", 1 | (2 ^ (3 & 6))),
        ("1 + 2 == 3", 1),
        ("3 > 2 == 1", 1),
        ("1 < 2 < 3", 1),
        ("1 && 0 || 1", 1),
        ("0 || 0 && 1", 0),
        ("-7 / 2", -3),
        ("-7 % 2", -1),
        ("7 % -2", 1),
        ("~0", -1),
        ("!5", 0),
        ("!0", 1),
        ("- -3", 3),
        ("-(2 + 3) * 4", -20),
        ("0x10 + 010 + 0b10 + 10", 16 + 8 + 2 + 10),
        ("'A' + 1", 66),
        ("'\\n'", 10),
        ("0xffffffffffffffff + 1", 0),
        ("1 << 63 >> 63", -1),
        ("1 << 64", 0),
        ("0x7fffffffffffffff + 1", -(1 << 63)),
    ],
)
def test_operators_follow_c_precedence_and_64_bit_arithmetic(text: str, expected: int) -> None:
    assert value(text) == expected


def test_registers_read_from_the_context_and_aliases_are_distinct_names() -> None:
    ctx = FakeContext()
    assert value("$rax * 2 + 1", ctx) == 11
    assert value("$rbx", ctx) == -1
    assert value("$rbx + 1", ctx) == 0
    assert evaluate("$rip", ctx).address
    with pytest.raises(ExprError, match='Invalid register "\\$nope"'):
        evaluate("$nope", ctx)


def test_symbols_stand_for_their_address() -> None:
    ctx = FakeContext()
    v = evaluate("kprintf + 4", ctx)
    assert v.address and v.value == 0x101784
    assert value("ticks - kprintf", ctx) == 0x142648 - 0x101780
    assert value("&ticks", ctx) == 0x142648
    assert value("words.0", ctx) == 0x132640


def test_unknown_symbol_names_it() -> None:
    with pytest.raises(ExprError) as e:
        evaluate("foo + 1", FakeContext())
    assert str(e.value) == 'No symbol "foo" in current context.'
    assert e.value.symbol == "foo"


def test_dereference_reads_eight_bytes_or_the_cast_type() -> None:
    ctx = FakeContext()
    assert value("*ticks", ctx) == 3
    assert value("*0x1000", ctx) == 0x8001FEFF
    assert value("*(uint8_t *)0x1000", ctx) == 0xFF
    assert value("*(int8_t *)0x1000", ctx) == -1
    assert value("*(unsigned short *)0x1000", ctx) == 0xFEFF
    assert value("*(uint16_t *)0x1000 + 1", ctx) == 0xFF00
    assert value("*((uint16_t *)0x1000 + 1)", ctx) == 0x8001  # pointer arithmetic scales
    assert value("(uint8_t)0x1234", ctx) == 0x34
    assert value("(char)0xff", ctx) == -1


def test_unreadable_memory_is_an_expression_error() -> None:
    with pytest.raises(ExprError, match="Cannot access memory at address 0x5"):
        evaluate("*5", FakeContext())


def test_value_history() -> None:
    ctx = FakeContext()
    ctx.values = [integer(10), integer(20)]
    assert value("$", ctx) == 20
    assert value("$$", ctx) == 10
    assert value("$1 + $2", ctx) == 30
    assert value("$$0", ctx) == 20
    with pytest.raises(ExprError, match="History has not yet reached \\$3"):
        evaluate("$3", ctx)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 +", "A syntax error in expression, near `'."),
        ("(1 + 2", "A syntax error in expression, near `'."),
        ("1 + 2)", "A syntax error in expression, near `)'."),
        ("1 2", "A syntax error in expression, near `2'."),
        ("", "Argument required (expression to compute)."),
        ("1 # 2", "Invalid character '#' in expression."),
        ("12abc", 'Invalid number "12abc".'),
        ("09", 'Invalid number "09".'),
        ("0x1" + "0" * 16, "Numeric constant too large."),
        ("1 / 0", "Division by zero"),
        ("1 % (2 - 2)", "Division by zero"),
        ("1 << -1", "Negative shift count."),
        ("*(void *)0", "Attempt to take contents of a non-pointer value."),
        ("&$rax", "Attempt to take address of value not located in memory."),
        ("(unsigned unsigned)1", "A syntax error in expression, near `unsigned unsigned)1'."),
        ("1 = 2", "A syntax error in expression, near `= 2'."),
    ],
)
def test_errors_read_like_gdb(text: str, message: str) -> None:
    with pytest.raises(ExprError) as e:
        evaluate(text, FakeContext())
    assert str(e.value) == message


def test_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ExprError, match="too deeply nested"):
        parse("(" * 1000 + "1" + ")" * 1000)
    with pytest.raises(ExprError, match="too deeply nested"):
        parse("-" * 1000 + "1")
    with pytest.raises(ExprError, match="too deeply nested"):
        parse("+".join(["1"] * (MAX_DEPTH + 10)))
    with pytest.raises(ExprError, match="too long"):
        parse("1" * 100_000)
    assert value("+".join(["1"] * (MAX_DEPTH - 1))) == MAX_DEPTH - 1


def test_assignment_splits_at_the_single_equals() -> None:
    lhs, rhs = parse_assignment("$rax = $rbx == 1")
    assert lhs == Reg("rax")
    assert evaluate(rhs, FakeContext()).value == 0
    lhs, _ = parse_assignment("*(uint32_t *)0x1000 = 5")
    assert isinstance(lhs, Deref)
    with pytest.raises(ExprError):
        parse_assignment("$rax")
    with pytest.raises(ExprError):
        parse_assignment("$rax =")


def test_integer_wraps_to_the_type() -> None:
    assert integer(1 << 64) == Value(0, LONG)
    assert integer(-1).unsigned == (1 << 64) - 1


ALPHABET = list("0123456789abcdefx$()*&+-~!<>=|^%/' ,.\\_") + [
    "$rax",
    "$rip",
    "kprintf",
    "ticks",
    "<<",
    ">>",
    "&&",
    "||",
    "(uint8_t *)",
    "(char)",
    "0x",
    "'a'",
]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_any_text_gives_a_value_or_an_expression_error(text: str) -> None:
    try:
        evaluate(text, FakeContext())
    except ExprError:
        pass


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=40).map("".join))
def test_expression_like_soup_gives_a_value_or_an_expression_error(text: str) -> None:
    try:
        result = evaluate(text, FakeContext())
    except ExprError:
        return
    assert -(1 << 63) <= result.value < 1 << 64
