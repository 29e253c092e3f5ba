"""Issue 5's acceptance scenario: a value corrupted by an interrupt handler,
noticed much later, is diagnosed backwards in a batch script."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from replayvm.debugger.symbols import SymbolTable
from replayvm.guests import catalog
from replayvm.session.timeline import DebugSession
from tests.exe import EXE


def test_watch_and_reverse_continue_land_on_the_corrupting_store(tmp_path: Path) -> None:
    rec = tmp_path / "irqbug.rvr"
    recorded = subprocess.run(
        [*EXE, "record", "irqbug", "-o", str(rec), "-q"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert recorded.returncode == catalog.expected_status("irqbug")
    assert b"balance corrupted" in recorded.stdout
    symbols = SymbolTable.from_elf(catalog.image_path("irqbug").read_bytes())
    balance = symbols.address_of("ledger") + 8 * 8  # struct ledger: samples[8], then balance
    script = tmp_path / "diagnose.gdb"
    script.write_text(f"break panic\ncontinue\nwatch *{balance:#x}\nreverse-continue\nwhen\n")
    out = subprocess.run(
        [*EXE, "debug", str(rec), "-x", str(script), "--batch"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=120,
    ).stdout.decode()
    assert "Old value = 8000" in out and "New value = 17000" in out
    stop = re.search(
        r"0x([0-9a-f]+) in (\w+) \(\) \[icount (\d+)\]\n=>[^\n]*\n(?!.*Breakpoint)", out.split("watch")[-1]
    )
    assert stop is not None, out
    rip, function, icount = int(stop.group(1), 16), stop.group(2), int(stop.group(3))
    assert function == "record_sample"
    # Independently: the instruction just before that position is the store into the balance.
    session = DebugSession.open(rec)
    session.seek(icount - 1)
    insn = session.instruction_at(session.vcpu.rip)
    assert insn is not None and insn.mnemonic == "mov" and insn.op_str.startswith("qword ptr")
    assert int.from_bytes(session.read_memory(balance, 8), "little") == 8000
    session.stepi()
    assert (session.icount, session.vcpu.rip) == (icount, rip)
    assert int.from_bytes(session.read_memory(balance, 8), "little") == 17000
    assert symbols.function_name(session.vcpu.rip) == "record_sample"
