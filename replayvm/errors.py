"""The one error hierarchy of ReplayVM (STYLE.md: engine and session).

Every error a user can cause (bad image, bad file, bad option, a guest that
dies) is a ``ReplayVMError``; the CLI prints it as one line and exits with
its ``exit_status``. Anything else escaping is a bug in ReplayVM.
"""

from __future__ import annotations


class ReplayVMError(Exception):
    """Base class: a clear, one-line, user-facing error."""

    exit_status = 1


class ConfigError(ReplayVMError):
    """Bad image, bad option, bad machine configuration."""

    exit_status = 2


class TraceFormatError(ReplayVMError):
    """A recording file is malformed, truncated or hostile."""

    exit_status = 2

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"bad recording{where}: {message}")


class DivergenceError(ReplayVMError):
    """Replay no longer matches the recording."""

    exit_status = 3

    def __init__(
        self, message: str, *, icount: int | None = None, expected_rip: int | None = None, actual_rip: int | None = None
    ) -> None:
        super().__init__(message)
        self.icount = icount
        self.expected_rip = expected_rip
        self.actual_rip = actual_rip


class GuestError(ReplayVMError):
    """The guest did something the platform cannot continue from."""

    exit_status = 4


class EngineError(ReplayVMError):
    """The CPU engine (Unicorn) does not behave as ReplayVM was calibrated for."""

    exit_status = 5
