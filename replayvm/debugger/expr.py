"""Debugger expressions: a small C-like language, parsed by hand (never eval).

What ``print``, ``x``, ``break *ADDR``, ``watch``, ``set`` and breakpoint
conditions accept, close to gdb's C expressions for a program without debug
information:

* numbers ``42``, ``0x2a``, ``052`` (octal, as in C), ``0b101010``, ``'*'``;
* registers ``$rax`` ... ``$r15``, ``$rip``/``$pc``, ``$rsp``/``$sp``,
  ``$rbp``/``$fp``, ``$eflags``, ``$cr3``, sub-registers ``$eax``, ``$ax``,
  ``$al``, ``$ah``, ``$r8d`` ...; value history ``$``, ``$$``, ``$3``, ``$$2``;
* symbols: a symbol stands for its address (``kprintf+4``);
* unary ``- + ~ !``, ``*ADDR`` (reads 8 bytes), ``&SYMBOL``, casts
  ``(uint32_t)X`` and ``*(uint16_t *)ADDR`` (reads 2 bytes);
* binary operators with C's precedence: ``* / %``, ``+ -``, ``<< >>``,
  ``< <= > >=``, ``== !=``, ``&``, ``^``, ``|``, ``&&``, ``||``.

Arithmetic is 64-bit two's complement, as on the target. Every problem, in
parsing or in evaluation, is an :class:`ExprError` with gdb's wording; the
parser bounds input length and nesting, so hostile text cannot exhaust the
stack or memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from replayvm.errors import ReplayVMError

MASK64 = (1 << 64) - 1
MAX_LENGTH = 4096  # characters
MAX_DEPTH = 128  # nesting of the syntax tree


class ExprError(ReplayVMError):
    """An expression that cannot be parsed or evaluated."""

    def __init__(self, message: str, *, symbol: str | None = None) -> None:
        super().__init__(message)
        self.symbol = symbol  # set for "No symbol ..." errors


# -- types and values ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CType:
    name: str
    size: int  # bytes; 0 for void
    signed: bool


VOID = CType("void", 0, False)
CHAR = CType("char", 1, True)
INT = CType("int", 4, True)
LONG = CType("long", 8, True)
ULONG = CType("unsigned long", 8, False)

_FIXED_TYPES = {
    "int8_t": CType("int8_t", 1, True),
    "uint8_t": CType("uint8_t", 1, False),
    "int16_t": CType("int16_t", 2, True),
    "uint16_t": CType("uint16_t", 2, False),
    "int32_t": CType("int32_t", 4, True),
    "uint32_t": CType("uint32_t", 4, False),
    "int64_t": CType("int64_t", 8, True),
    "uint64_t": CType("uint64_t", 8, False),
    "size_t": CType("size_t", 8, False),
    "ssize_t": CType("ssize_t", 8, True),
    "uintptr_t": CType("uintptr_t", 8, False),
    "intptr_t": CType("intptr_t", 8, True),
    "bool": CType("bool", 1, False),
    "_Bool": CType("_Bool", 1, False),
    "void": VOID,
}
_C_TYPE_WORDS = frozenset({"unsigned", "signed", "char", "short", "int", "long"})
TYPE_WORDS = _C_TYPE_WORDS | frozenset(_FIXED_TYPES)


def _c_type(words: list[str]) -> CType | None:
    """``unsigned long int`` and friends; None if the words are no C type."""
    if len(words) == 1 and words[0] in _FIXED_TYPES:
        return _FIXED_TYPES[words[0]]
    if not words or any(w not in _C_TYPE_WORDS for w in words):
        return None
    signs = [w for w in words if w in ("signed", "unsigned")]
    base = [w for w in words if w not in ("signed", "unsigned")]
    if len(signs) > 1:
        return None
    unsigned = signs == ["unsigned"]
    if base in ([], ["int"]):
        size = 4
    elif base == ["char"]:
        size = 1
    elif base in (["short"], ["short", "int"]):
        size = 2
    elif base in (["long"], ["long", "int"], ["long", "long"], ["long", "long", "int"]):
        size = 8
    else:
        return None
    return CType(" ".join(words), size, not unsigned)


def wrap(value: int, ctype: CType = LONG) -> int:
    """``value`` reduced to the range of ``ctype`` (two's complement)."""
    bits = 8 * (ctype.size or 8)
    value &= (1 << bits) - 1
    if ctype.signed and value >> (bits - 1):
        value -= 1 << bits
    return value


@dataclass(frozen=True, slots=True)
class Value:
    value: int
    ctype: CType = LONG
    pointee: CType | None = None  # a typed pointer, from a cast: (T *)
    address: bool = False  # an address: printed with <symbol+offset>

    @property
    def unsigned(self) -> int:
        return self.value & MASK64


def integer(value: int, ctype: CType = LONG) -> Value:
    return Value(wrap(value, ctype), ctype)


def address(value: int, pointee: CType | None = None) -> Value:
    return Value(value & MASK64, ULONG, pointee, True)


# -- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: int
    ctype: CType


@dataclass(frozen=True, slots=True)
class Reg:
    name: str


@dataclass(frozen=True, slots=True)
class Sym:
    name: str


@dataclass(frozen=True, slots=True)
class History:
    index: int  # absolute ($3) when ``relative`` is False, else back from the last ($$2)
    relative: bool


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Deref:
    operand: Node


@dataclass(frozen=True, slots=True)
class AddressOf:
    operand: Node


@dataclass(frozen=True, slots=True)
class Cast:
    ctype: CType
    pointers: int
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Num | Reg | Sym | History | Unary | Deref | AddressOf | Cast | Binary


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num | char | ident | reg | hist | op | end
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)(?![\w.])
  | (?P<char>'(?:\\(?:x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)|[^\\'])')
  | (?P<hist>\$\$?[0-9]*(?![\w]))
  | (?P<reg>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_.][A-Za-z0-9_.$]*)
  | (?P<op><<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!<>()=])
    """,
    re.VERBOSE,
)
_WORD = re.compile(r"[\w.]+")
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27, "\\": 92, "'": 39, '"': 34}


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"Expression too long ({len(text)} characters; at most {MAX_LENGTH}).")
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            bad = text[pos]
            if bad.isdigit():
                word = _WORD.match(text, pos)
                raise ExprError(f'Invalid number "{word.group() if word else bad}".')
            raise ExprError(f"Invalid character '{bad}' in expression.")
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _number(text: str) -> Num:
    if len(text) > 1 and text[0] == "0" and text[1] in "0123456789":
        if any(c in "89" for c in text):
            raise ExprError(f'Invalid number "{text}".')
        value = int(text, 8)
    else:
        value = int(text, 0) if len(text) < 80 else MASK64 + 1
    if value > MASK64:
        raise ExprError("Numeric constant too large.")
    return Num(value, LONG if value <= MASK64 >> 1 else ULONG)


def _char(text: str) -> Num:
    body = text[1:-1]
    if body.startswith("\\"):
        esc = body[1:]
        if esc[0] == "x":
            value = int(esc[1:], 16)
        elif esc[0] in "01234567" and (len(esc) > 1 or esc != "0"):
            value = int(esc, 8) & 0xFF
        elif esc in _ESCAPES:
            value = _ESCAPES[esc]
        else:
            value = ord(esc)
    else:
        value = ord(body)
    return Num(wrap(value, CHAR), CHAR)


# -- parser (precedence climbing) ----------------------------------------------------------

_BINARY = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    "<=": 7,
    ">": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, token: Token | None = None) -> ExprError:
        token = token or self.tok
        return ExprError(f"A syntax error in expression, near `{self.text[token.pos :]}'.")

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        if self.tok.kind != "op" or self.tok.text != text:
            raise self.error()
        self.i += 1

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("Argument required (expression to compute).")
        node, _ = self.expression(0, 0)
        if self.tok.kind != "end":
            raise self.error()
        return node

    def expression(self, min_prec: int, depth: int) -> tuple[Node, int]:
        """(node, its depth); binary operators are left-associative."""
        left, left_depth = self.unary(depth)
        while self.tok.kind == "op" and _BINARY.get(self.tok.text, 0) > min_prec:
            op = self.take().text
            right, right_depth = self.expression(_BINARY[op], depth + 1)
            left_depth = 1 + max(left_depth, right_depth)
            if left_depth > MAX_DEPTH:
                raise ExprError("Expression too deeply nested.")
            left = Binary(op, left, right)
        return left, left_depth

    def unary(self, depth: int) -> tuple[Node, int]:
        if depth > MAX_DEPTH:
            raise ExprError("Expression too deeply nested.")
        tok = self.tok
        if tok.kind == "op" and tok.text in ("-", "+", "~", "!", "*", "&"):
            self.i += 1
            operand, d = self.unary(depth + 1)
            if tok.text == "*":
                return Deref(operand), d + 1
            if tok.text == "&":
                return AddressOf(operand), d + 1
            return Unary(tok.text, operand), d + 1
        if tok.kind == "op" and tok.text == "(" and self._is_cast():
            self.i += 1
            ctype, pointers = self.type_name()
            self.expect(")")
            operand, d = self.unary(depth + 1)
            return Cast(ctype, pointers, operand), d + 1
        return self.primary(depth)

    def _is_cast(self) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "ident" and nxt.text in TYPE_WORDS

    def type_name(self) -> tuple[CType, int]:
        start = self.tok
        words = []
        while self.tok.kind == "ident" and self.tok.text in TYPE_WORDS:
            words.append(self.take().text)
        ctype = _c_type(words)
        if ctype is None:
            raise self.error(start)
        pointers = 0
        while self.tok.kind == "op" and self.tok.text == "*":
            self.i += 1
            pointers += 1
        if ctype is VOID and pointers == 0:
            raise ExprError("Invalid cast to void.")
        return ctype, pointers

    def primary(self, depth: int) -> tuple[Node, int]:
        tok = self.take()
        if tok.kind == "num":
            return _number(tok.text), 1
        if tok.kind == "char":
            return _char(tok.text), 1
        if tok.kind == "reg":
            return Reg(tok.text[1:].lower()), 1
        if tok.kind == "hist":
            relative = tok.text.startswith("$$")
            digits = tok.text.lstrip("$")
            if len(digits) > 18:
                raise ExprError(f"History has not yet reached {tok.text}.")
            index = int(digits) if digits else (1 if relative else 0)
            return History(index, relative or not digits), 1
        if tok.kind == "ident":
            return Sym(tok.text), 1
        if tok.kind == "op" and tok.text == "(":
            node, d = self.expression(0, depth + 1)
            self.expect(")")
            return node, d
        raise self.error(tok)


def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`ExprError` if it is not an expression."""
    return _Parser(text).parse()


def parse_assignment(text: str) -> tuple[Node, Node]:
    """``LHS = RHS`` (for ``set``): both trees."""
    parser = _Parser(text)
    tokens = parser.tokens
    eq = next((i for i, t in enumerate(tokens) if t.kind == "op" and t.text == "="), None)
    if eq is None:
        raise ExprError("Expected an assignment: LHS = EXPRESSION.")
    left = _Parser(text[: tokens[eq].pos]).parse()
    right_text = text[tokens[eq].pos + 1 :]
    if not right_text.strip():
        raise ExprError(f"A syntax error in expression, near `{right_text}'.")
    return left, _Parser(right_text).parse()


def walk(tree: Node) -> Iterator[Node]:
    """Every node of a tree (to check names before a condition first runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Binary):
            stack += [node.left, node.right]
        elif isinstance(node, (Unary, Deref, AddressOf, Cast)):
            stack.append(node.operand)


# -- evaluation ------------------------------------------------------------------------------


class Context(Protocol):
    """Where an expression's names get their values."""

    def register(self, name: str) -> Value:
        """The value of register ``name`` (without ``$``); ExprError if unknown."""
        ...

    def symbol(self, name: str) -> Value:
        """The address of symbol ``name``; ExprError if unknown."""
        ...

    def read(self, address: int, size: int) -> bytes:
        """Guest memory; ExprError if it cannot be read."""
        ...

    def history(self, index: int, relative: bool) -> Value:
        """A value printed earlier ($N, $, $$N); ExprError if there is none."""
        ...


def evaluate(tree: Node | str, ctx: Context) -> Value:
    """The value of an expression (a tree or its text) in ``ctx``."""
    return _eval(parse(tree) if isinstance(tree, str) else tree, ctx)


def _eval(node: Node, ctx: Context) -> Value:
    if isinstance(node, Num):
        return Value(node.value, node.ctype)
    if isinstance(node, Reg):
        return ctx.register(node.name)
    if isinstance(node, Sym):
        return ctx.symbol(node.name)
    if isinstance(node, History):
        return ctx.history(node.index, node.relative)
    if isinstance(node, Unary):
        v = _eval(node.operand, ctx)
        if node.op == "!":
            return integer(int(v.value == 0), INT)
        ctype = v.ctype if v.ctype.size == 8 else LONG
        if node.op == "-":
            return integer(-v.value, ctype)
        if node.op == "~":
            return integer(~v.value, ctype)
        return integer(v.value, ctype)
    if isinstance(node, Deref):
        return deref(_eval(node.operand, ctx), ctx)
    if isinstance(node, AddressOf):
        return address_of(node.operand, ctx)
    if isinstance(node, Cast):
        v = _eval(node.operand, ctx)
        if node.pointers == 0:
            return integer(v.value, node.ctype)
        return address(v.value, node.ctype if node.pointers == 1 else ULONG)
    return _binary(node, ctx)


def deref(pointer: Value, ctx: Context) -> Value:
    """``*P``: the pointee of a typed pointer, else 8 bytes as a long."""
    ctype = pointer.pointee or LONG
    if ctype.size == 0:
        raise ExprError("Attempt to take contents of a non-pointer value.")
    data = ctx.read(pointer.unsigned, ctype.size)
    return Value(int.from_bytes(data, "little", signed=ctype.signed), ctype)


def address_of(node: Node, ctx: Context) -> Value:
    if isinstance(node, Sym):
        return ctx.symbol(node.name)
    if isinstance(node, Deref):
        return address(_eval(node.operand, ctx).value)
    raise ExprError("Attempt to take address of value not located in memory.")


def _common(a: Value, b: Value) -> CType:
    """C's usual arithmetic conversions, narrowed to long and unsigned long."""
    return ULONG if (a.ctype.size == 8 and not a.ctype.signed) or (b.ctype.size == 8 and not b.ctype.signed) else LONG


def _binary(node: Binary, ctx: Context) -> Value:
    op = node.op
    left = _eval(node.left, ctx)
    if op in ("&&", "||"):
        if (left.value != 0) == (op == "||"):
            return integer(int(op == "||"), INT)
        return integer(int(_eval(node.right, ctx).value != 0), INT)
    right = _eval(node.right, ctx)
    if op in ("+", "-"):
        return _additive(op, left, right)
    if op in ("<<", ">>"):
        if right.value < 0:
            raise ExprError("Negative shift count.")
        ctype = left.ctype if left.ctype.size == 8 else LONG
        a, count = wrap(left.value, ctype), min(right.value, 64)
        return integer(a << count if op == "<<" else a >> count, ctype)
    ctype = _common(left, right)
    a, b = wrap(left.value, ctype), wrap(right.value, ctype)
    if op in _COMPARE:
        return integer(int(_COMPARE[op](a, b)), INT)
    if op in ("/", "%"):
        if b == 0:
            raise ExprError("Division by zero")
        quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncates toward zero
        return integer(quotient if op == "/" else a - quotient * b, ctype)
    return integer(_ARITH[op](a, b), ctype)


def _additive(op: str, left: Value, right: Value) -> Value:
    """Pointer arithmetic scales by the pointee's size, as in C."""
    if left.address and right.address and op == "-":
        scale = left.pointee.size if left.pointee is not None and left.pointee.size else 1
        return integer((left.value - right.value) // scale)
    pointer, other = (right, left) if right.address and not left.address and op == "+" else (left, right)
    if pointer.address:
        scale = pointer.pointee.size if pointer.pointee is not None and pointer.pointee.size else 1
        delta = other.value * scale
        return address(pointer.value + delta if op == "+" else pointer.value - delta, pointer.pointee)
    ctype = _common(left, right)
    return integer(left.value + right.value if op == "+" else left.value - right.value, ctype)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_ARITH: dict[str, Callable[[int, int], int]] = {
    "*": lambda a, b: a * b,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
}
