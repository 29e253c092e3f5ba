"""Where the debugger writes: results on stdout, errors on stderr, and the
guest's serial output as it is produced.

The streams are looked up at write time unless given, so the REPL's
``patch_stdout`` (which swaps ``sys.stdout``) takes effect. Guest output is
decoded incrementally (a UTF-8 sequence may straddle two slices) with CR LF
turned into LF; a debugger line that follows guest output not ending in a
newline starts on a line of its own.
"""

from __future__ import annotations

import codecs
import sys
from typing import TextIO


class Console:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out
        self._err = err
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._cr_pending = False
        self._mid_line = False  # guest output left the cursor inside a line

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err if self._err is not None else sys.stderr

    def guest_output(self, data: bytes) -> None:
        """DebugSession's ``on_output``: serial bytes from forward execution."""
        text = self._decoder.decode(data)
        if self._cr_pending:
            text = "\r" + text
            self._cr_pending = False
        if text.endswith("\r"):
            text, self._cr_pending = text[:-1], True
        text = text.replace("\r\n", "\n")
        if text:
            self.out.write(text)
            self.out.flush()
            self._mid_line = not text.endswith("\n")

    def end_line(self) -> None:
        """Finish a line of guest output, if one is open."""
        if self._cr_pending:
            self._cr_pending = False
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False

    def line(self, text: str = "") -> None:
        self.end_line()
        self.out.write(text + "\n")

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.line(text)

    def error(self, text: str) -> None:
        self.end_line()
        self.out.flush()
        self.err.write(text + "\n")
        self.err.flush()

    def flush(self) -> None:
        self.out.flush()
