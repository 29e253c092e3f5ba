"""What a bug reporter saw, stored in the recording and checked on replay.

``replayvm record --expect KIND[=VALUE] --note TEXT`` stores expectations in an
ancillary ``r`` frame written just before END (FORMAT.md §3.1), so old
readers skip it and the values can come from the run itself: ``--expect
status`` records the status this run ended with. Kinds:

==================  =========================================================
``status=N``        the exit status (``(code << 1) | 1`` for isa-debug-exit)
``reason=R``        how the run ended (debug-exit, reset, shutdown, halted, ...)
``output=sha256:H`` the SHA-256 of everything the guest wrote on its serial port
``output-contains`` a text the serial output contains
``crash-at=SYM``    the newest exception was raised by an instruction in SYM
``final=EXPR``      a debugger expression true in the final state (``$rax == 0``)
==================  =========================================================
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from replayvm.errors import ConfigError, TraceFormatError

REPORT_TAG = "r"
KINDS = ("status", "reason", "output", "output-contains", "crash-at", "final")
MAX_OUTPUT_KEPT = 256 << 10  # expected output text kept for diffs


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: str
    value: str | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value}"


def parse_expectation(spec: str) -> Expectation:
    kind, sep, value = spec.partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise ConfigError(f"unknown expectation {kind!r} (kinds: {', '.join(KINDS)})")
    if kind in ("output-contains", "final") and not sep:
        raise ConfigError(f"--expect {kind} needs a value: {kind}=...")
    return Expectation(kind, value if sep else None)


class OutputCapture:
    """The guest's serial output: digested whole, kept up to a bound for text checks."""

    KEEP = 16 << 20

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.kept = bytearray()

    def __call__(self, data: bytes) -> None:
        self._sha.update(data)
        if len(self.kept) < self.KEEP:
            self.kept += data[: self.KEEP - len(self.kept)]

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


@dataclass(slots=True)
class Outcome:
    """How a run ended, as expectations see it."""

    status: int
    reason: str
    output: OutputCapture
    last_exception: tuple[int, int] | None
    symbolize: Callable[[int], str | None] = lambda address: None
    evaluate: Callable[[str], int] | None = None


@dataclass(slots=True)
class Report:
    note: str = ""
    expectations: list[Expectation] = field(default_factory=list)
    output: str | None = None  # the output the reporter saw, for diffs

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "note": self.note,
                "expect": [[e.kind, e.value] for e in self.expectations],
                "output": self.output,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Report:
        try:
            raw = json.loads(data)
            assert isinstance(raw, dict) and raw.get("version") == 1
            note, expect, output = raw["note"], raw["expect"], raw.get("output")
            assert isinstance(note, str) and isinstance(expect, list) and (output is None or isinstance(output, str))
            expectations = []
            for item in expect:
                assert isinstance(item, list) and len(item) == 2 and item[0] in KINDS
                assert item[1] is None or isinstance(item[1], str)
                expectations.append(Expectation(item[0], item[1]))
        except (ValueError, AssertionError, KeyError, TypeError):
            raise TraceFormatError("malformed bug report frame (note and expectations)") from None
        return cls(note, expectations, output)


def crash_symbol(outcome: Outcome) -> str | None:
    if outcome.last_exception is None:
        return None
    return outcome.symbolize(outcome.last_exception[1])


def fill(expectation: Expectation, outcome: Outcome) -> Expectation:
    """The expectation with its value taken from ``outcome`` where none was given."""
    if expectation.value is not None:
        return expectation
    kind = expectation.kind
    if kind == "status":
        return Expectation(kind, str(outcome.status))
    if kind == "reason":
        return Expectation(kind, outcome.reason)
    if kind == "output":
        return Expectation(kind, outcome.output.digest)
    if kind == "crash-at":
        symbol = crash_symbol(outcome)
        if symbol is None:
            raise ConfigError("--expect crash-at: the run raised no exception inside a known symbol")
        return Expectation(kind, symbol)
    raise ConfigError(f"--expect {kind} needs a value")


def check(expectation: Expectation, outcome: Outcome, report: Report | None = None) -> str | None:
    """None when met, else a readable explanation."""
    kind, value = expectation.kind, expectation.value
    if kind == "status":
        return None if str(outcome.status) == value else f"exit status {outcome.status}, expected {value}"
    if kind == "reason":
        return None if outcome.reason == value else f"run ended by {outcome.reason}, expected {value}"
    if kind == "output":
        actual = outcome.output.digest
        if actual == value:
            return None
        message = f"serial output digest {actual}, expected {value}"
        if report is not None and report.output is not None:
            diff = difflib.unified_diff(
                report.output.splitlines(),
                bytes(outcome.output.kept).decode(errors="replace").splitlines(),
                "expected output",
                "replayed output",
                lineterm="",
                n=2,
            )
            message += "\n" + "\n".join(list(diff)[:60])
        return message
    if kind == "output-contains":
        assert value is not None
        return None if value.encode() in outcome.output.kept else f"serial output does not contain {value!r}"
    if kind == "crash-at":
        symbol = crash_symbol(outcome)
        if symbol == value:
            return None
        if outcome.last_exception is None:
            return f"no exception was raised, expected a crash in {value}"
        vector, rip = outcome.last_exception
        return f"last exception (vector {vector}) at RIP {rip:#x} in {symbol or '??'}, expected in {value}"
    if kind == "final":
        assert value is not None
        if outcome.evaluate is None:
            return f"cannot evaluate {value!r}: no debugger expression support"
        try:
            result = outcome.evaluate(value)
        except Exception as e:  # noqa: BLE001 - any evaluation problem is a failed expectation
            return f"final state: {value!r} could not be evaluated ({e})"
        return None if result else f"final state: {value!r} is false"
    return f"unknown expectation kind {kind!r}"


def build_report(note: str, expectations: list[Expectation], outcome: Outcome) -> Report:
    """The report a recorder stores: expectations filled from this run."""
    filled = [fill(e, outcome) for e in expectations]
    text = bytes(outcome.output.kept[:MAX_OUTPUT_KEPT]).decode(errors="replace")
    return Report(note, filled, text if any(e.kind == "output" for e in filled) else None)


def read_report(reader: object) -> Report | None:
    """The bug report stored in a recording, if any (``reader``: a RecordingReader)."""
    frames = reader.ancillary(REPORT_TAG)  # type: ignore[attr-defined]
    return Report.from_bytes(frames[-1]) if frames else None
