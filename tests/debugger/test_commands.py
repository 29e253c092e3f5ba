"""Every command, run the way a script runs it, with its output compared."""

from __future__ import annotations

import re

from replayvm.debugger.commands import REGISTRY, load_commands
from tests.debugger.conftest import Driven

load_commands()


def sym(d: Driven, name: str) -> int:
    address = d.dbg.symbols.address_of(name)
    assert address is not None
    return address


def to_kprintf(d: Driven) -> str:
    d.run("break kprintf")
    return d.run("continue")


def test_help_lists_every_registered_command(demo: Driven) -> None:
    text = demo.run("help")
    for cmd in REGISTRY.commands.values():
        assert re.search(rf"^  {re.escape(cmd.name)}\b", text, re.MULTILINE), cmd.name
        assert cmd.summary in text
    assert demo.run("help si").startswith("usage: stepi [count]")
    assert "Aliases: si" in demo.run("help stepi")
    assert "info registers" in demo.run("help info")
    assert demo.error("help nosuch") == 'Undefined command: "nosuch".  Try "help".'


def test_when_stepi_and_nexti_move_by_instructions(demo: Driven) -> None:
    assert demo.run("when") == "Current icount: 0\n"
    out = demo.run("stepi")
    assert out.splitlines()[0] == "0x0000000000100001 in pvh_start32 () [icount 1]"
    assert out.splitlines()[1].startswith("=> 0x100001 <pvh_start32+1>:\t")
    assert "[icount 4]" in demo.run("si 3")
    assert "[icount 5]" in demo.run("ni")
    assert "[icount 7]" in demo.run("nexti 2")
    assert demo.run("when") == "Current icount: 7\n"


def test_break_continue_reports_the_breakpoint_and_instruction(demo: Driven) -> None:
    kprintf = sym(demo, "kprintf")
    assert demo.run("break kprintf") == f"Breakpoint 1 at {kprintf:#x} <kprintf>\n"
    lines = demo.run("continue").splitlines()
    assert lines[0] == ""
    assert re.fullmatch(rf"Breakpoint 1, 0x{kprintf:016x} in kprintf \(\) \[icount \d+\]", lines[1])
    assert lines[2] == f"=> {kprintf:#x} <kprintf>:\tpush   rbp"


def test_break_accepts_addresses_offsets_and_the_current_instruction(demo: Driven) -> None:
    kprintf = sym(demo, "kprintf")
    assert demo.run(f"break *{kprintf + 4:#x}") == f"Breakpoint 1 at {kprintf + 4:#x} <kprintf+4>\n"
    assert demo.run("b kprintf+4") == f"Breakpoint 2 at {kprintf + 4:#x} <kprintf+4>\n"
    assert demo.run("br") == "Breakpoint 3 at 0x100000 <pvh_start32>\n"
    assert demo.run("tbreak kmain") == f"Temporary breakpoint 4 at {sym(demo, 'kmain'):#x} <kmain>\n"
    out = demo.run("c")
    assert "Temporary breakpoint 4, " in out
    assert "4 " not in demo.run("info breakpoints").splitlines()[-1][:2]


def test_break_errors_are_one_line(demo: Driven) -> None:
    assert demo.error("break nosuch") == 'Function "nosuch" not defined.'
    assert demo.error("break 12") == 'No line number information available; use "break *12" for an address.'
    assert demo.error("break kprintf if") == "Argument required (boolean expression)."
    assert demo.error("break *") == "Argument required (expression to compute)."
    assert demo.error("break kprintf if $nope") == 'Invalid register "$nope".'


def test_conditional_breakpoint_stops_only_where_the_condition_holds(demo: Driven) -> None:
    demo.run("break kprintf if *(uint8_t *)$rdi == '[' ")
    assert "Breakpoint 1, " in demo.run("continue")
    assert demo.run("x/s $rdi").split("\t")[1].startswith('"[var]')
    assert "stop only if *(uint8_t *)$rdi == '['" in demo.run("info breakpoints")


def test_a_failing_condition_stops_and_says_why(demo: Driven) -> None:
    demo.run("break kprintf if *0xfffffffffffff000 == 1")
    lines = demo.run("continue").splitlines()
    assert lines[:2] == [
        "Error in testing condition for breakpoint 1:",
        "Cannot access memory at address 0xfffffffffffff000",
    ]
    assert lines[3].startswith("Breakpoint 1, ")


def test_info_breakpoints_and_delete(demo: Driven) -> None:
    assert demo.run("info breakpoints") == "No breakpoints or watchpoints.\n"
    demo.run("break kprintf", "tbreak kmain", "watch ticks", "rwatch ticks,4", "awatch *(uint32_t *)ticks")
    table = demo.run("info b").splitlines()
    assert table[0] == "Num     Type            Disp Enb Address            What"
    assert table[1].startswith("1       breakpoint      keep y   0x") and table[1].endswith("<kprintf>")
    assert table[2].startswith("2       breakpoint      del  y   ")
    assert table[3].startswith("3       hw watchpoint   keep y") and table[3].endswith("ticks (8 bytes at 0x142648)")
    assert table[4].startswith("4       read watchpoint") and table[4].endswith("(4 bytes at 0x142648)")
    assert table[5].startswith("5       acc watchpoint") and table[5].endswith("(4 bytes at 0x142648)")
    demo.run("delete 2 3")
    assert [line[:2] for line in demo.run("info breakpoints").splitlines()[1:]] == ["1 ", "4 ", "5 "]
    assert demo.error("delete 9") == "No breakpoint number 9."
    assert demo.error("delete x") == 'Arguments must be breakpoint numbers, not "x".'
    demo.run("delete")
    assert demo.run("info breakpoints") == "No breakpoints or watchpoints.\n"


def test_watch_messages(demo: Driven) -> None:
    assert demo.run("watch ticks") == "Hardware watchpoint 1: ticks\n"
    assert demo.run("rwatch ticks") == "Hardware read watchpoint 2: ticks\n"
    assert demo.run("awatch 0x142648,2") == "Hardware access (read/write) watchpoint 3: 0x142648\n"
    assert demo.error("watch") == "Argument required (address expression to watch)."
    assert demo.error("watch ticks,0") == "A watchpoint covers 1 byte to 1048576 bytes, not 0."


def test_watch_forward_reports_old_and_new_value(demo: Driven) -> None:
    demo.run("watch ticks")
    lines = demo.run("continue").splitlines()
    at = lines.index("Hardware watchpoint 1: ticks")
    assert lines[at + 1 : at + 4] == ["", "Old value = 0", "New value = 1"]
    assert " in timer_irq () [icount " in lines[at + 4]


def test_physical_watchpoint_xp_and_gva2gpa(demo: Driven) -> None:
    demand = 0x40000040  # demo.c maps it on a page fault, in its own page tables
    assert demo.run(f"watch *(uint32_t *){demand:#x}") == f"Hardware watchpoint 1: *(uint32_t *){demand:#x}\n"
    lines = demo.run("continue").splitlines()
    assert lines[lines.index("New value = 42") - 1] == "Old value = <unreadable>"  # not mapped at the start
    store = demo.dbg.session.icount
    gpa = int(demo.run(f"gva2gpa {demand:#x}").split()[1], 16)
    assert gpa != demand and demo.dbg.session.machine.ram.contains(gpa, 4)
    assert demo.run(f"xp/1dw {gpa:#x}") == f"{gpa:#x}:\t42\n"
    assert demo.run(f"xp/2xb {gpa:#x}") == f"{gpa:#x}:\t0x2a\t0x00\n"
    demo.run("delete", "goto 0")
    assert demo.run(f"watch -p {gpa:#x},4") == f"Hardware watchpoint 2: physical {gpa:#x}\n"
    assert "2       hw watchpoint   keep y" in demo.run("info breakpoints")
    # Clearing the pool page writes zeros over zeros (no change, no stop, as
    # in gdb); the first change is the store through 0x40000040.
    text = demo.run("continue")
    assert "Hardware watchpoint 2: physical" in text and "New value = 42" in text
    assert demo.dbg.session.icount == store
    assert demo.error("watch -p") == "Argument required (address expression to watch)."
    assert demo.error("watch -p 0x10000000000,4") == "Physical address 0x10000000000 is not in guest RAM."
    assert (
        demo.error("xp/s 0x1000") == "xp shows numbers and characters, not format 's' (use x with a virtual address)."
    )
    assert demo.error("xp") == "Argument required (starting physical address)."
    assert demo.error("gva2gpa 0xfffffffffffff000") == "Cannot access memory at address 0xfffffffffffff000"


def test_print_formats_and_history(demo: Driven) -> None:
    to_kprintf(demo)
    kprintf = sym(demo, "kprintf")
    rsp = demo.registers()["rsp"]
    assert demo.run("print 1 + 2 * 3") == "$1 = 7\n"
    assert demo.run("p/x 255") == "$2 = 0xff\n"
    assert demo.run("p $1 + $2") == "$3 = 262\n"
    assert demo.run("p") == "$4 = 262\n"
    assert demo.run("p $pc") == f"$5 = {kprintf:#x} <kprintf>\n"
    assert demo.run("p/x $sp") == f"$6 = {rsp:#x}\n"
    assert demo.run("p kprintf + 4") == f"$7 = {kprintf + 4:#x} <kprintf+4>\n"
    ret = int.from_bytes(demo.dbg.session.read_memory(rsp, 8), "little")
    assert demo.run("p/a *$rsp") == f"$8 = {ret:#x} {demo.dbg.label(ret)}\n"
    assert demo.run("p/c 65") == "$9 = 65 'A'\n"
    assert demo.run("p/t 10") == "$10 = 1010\n"
    assert demo.run("p -1") == "$11 = -1\n"
    assert demo.error("p/q 1") == 'Undefined output format "q".'
    assert demo.error("p/w 1") == 'Size letters are meaningless in "print" command.'
    assert demo.error("p nosuch") == 'No symbol "nosuch" in current context.'
    assert demo.error("p 1 +") == "A syntax error in expression, near `'."


def test_x_examines_memory_in_gdb_formats(demo: Driven) -> None:
    to_kprintf(demo)
    kprintf = sym(demo, "kprintf")
    rsp = demo.registers()["rsp"]
    ret = int.from_bytes(demo.dbg.session.read_memory(rsp, 8), "little")
    assert demo.run("x/1xg $rsp").split("\t")[1].strip() == f"0x{ret:016x}"
    assert demo.run("x/2xw $rsp").count("\t") == 2
    text = demo.run("x/s $rdi")
    assert re.fullmatch(r'0x[0-9a-f]+:\t"demo: ReplayVM demo guest -- a tour of the rv-pc platform\\n"\n', text)
    insns = demo.run("x/3i $pc").splitlines()
    assert insns[0] == f"=> {kprintf:#x} <kprintf>:\tpush   rbp"
    assert insns[1] == f"   {kprintf + 1:#x} <kprintf+1>:\tmov    rbp, rsp"
    assert demo.run("x/2i").splitlines()[0].startswith(f"   {kprintf + 8:#x} <kprintf+8>:")
    assert demo.run("x/4c $rdi").split("\t")[1:] == ["100 'd'", "101 'e'", "109 'm'", "111 'o'\n"]
    assert demo.run("x/2db ticks") == "0x142648 <ticks>:\t0\t0\n"
    assert demo.error("x/4q $rsp") == 'Undefined output format "q".'
    assert demo.error("x/x 0xfffffffffffff000") == "Cannot access memory at address 0xfffffffffffff000"


def test_disassemble_a_function_or_a_count(demo: Driven) -> None:
    to_kprintf(demo)
    kprintf = sym(demo, "kprintf")
    lines = demo.run("disassemble").splitlines()
    assert lines[0] == "Dump of assembler code for function kprintf:"
    assert lines[1] == f"=> 0x{kprintf:016x} <kprintf>:\tpush   rbp"
    assert lines[-1] == "End of assembler dump."
    assert lines[-2].endswith("ret")
    lines = demo.run("disassemble kmain,3").splitlines()
    assert len(lines) == 5 and lines[1].startswith(f"   0x{sym(demo, 'kmain'):016x} <kmain>:")


def test_backtrace_walks_the_frame_pointer_chain(demo: Driven) -> None:
    demo.run("break memmap_ram_bytes", "continue")
    frames = demo.run("bt").splitlines()
    assert re.fullmatch(r"#0  0x[0-9a-f]{16} in memmap_ram_bytes \(\)", frames[0])
    assert [f.split(" in ")[1] for f in frames[1:]] == ["kmain ()", "sdk_main ()", "long_mode_entry ()"]
    assert demo.run("backtrace 2").count("\n") == 2 + 1  # two frames and the note
    demo.run("stepi", "stepi")  # inside the frame now
    assert demo.run("where").splitlines()[1:] == frames[1:]


def test_finish_and_reverse_finish(demo: Driven) -> None:
    demo.run("break memmap_ram_bytes", "continue", "delete")
    entry = demo.dbg.session.icount
    demo.run("stepi 3")
    out = demo.run("finish")
    assert out.startswith("Run till exit from #0  0x")
    assert " in kmain () [icount " in out
    assert demo.dbg.session.icount > entry
    demo.run(f"goto {entry + 3}")
    out = demo.run("reverse-finish")
    assert out.startswith("Run back to call of #0  ")
    assert out.splitlines()[-1].endswith("<memmap_ram_bytes>")
    assert " in kmain () [icount " in out
    assert demo.dbg.session.icount == entry - 1


def test_set_writes_registers_and_memory_as_a_diversion(demo: Driven) -> None:
    to_kprintf(demo)
    out = demo.run("set $rax = 0x1234")
    assert out.startswith("Diverged from the recording")
    assert demo.dbg.prompt == "(rvdb diverged) "
    assert demo.run("p/x $rax") == "$1 = 0x1234\n"
    demo.run("set $al = 0xff")
    assert demo.run("p/x $rax") == "$2 = 0x12ff\n"
    demo.run("set *ticks = 7", "set var *(uint8_t *)(ticks + 1) = 1")
    assert demo.run("p *ticks") == "$3 = 263\n"
    demo.run("set memory ticks 9")
    assert demo.run("p *ticks") == "$4 = 9\n"
    demo.run("set ticks = 11")
    assert demo.run("p *ticks") == "$5 = 11\n"
    assert demo.error("set $cs = 1") == "Register $cs cannot be written."
    assert demo.error("set 1 = 2") == "Left operand of assignment is not an lvalue."
    assert demo.error("set $rax") == "Expected an assignment: LHS = EXPRESSION."
    demo.run("set pagination off")  # gdb habits in scripts are accepted


def test_goto_when_and_reverse_commands(demo: Driven) -> None:
    assert "[icount 1000]" in demo.run("goto 1000")
    assert demo.run("when") == "Current icount: 1000\n"
    assert "[icount 999]" in demo.run("reverse-stepi")
    assert "[icount 995]" in demo.run("rsi 4")
    assert "[icount 994]" in demo.run("reverse-nexti")
    out = demo.run("goto start")
    assert "[icount 0]" in out
    assert demo.run("reverse-stepi").splitlines()[:2] == ["", "No more reverse-execution history."]
    end = demo.run("goto end")
    assert "guest exited with status" in end
    assert "The recording ends here" in demo.run("stepi")
    assert demo.error("goto") == "Argument required (an instruction count, `start` or `end`)."
    assert demo.error("goto -5") == "The instruction count must not be negative."


def test_info_registers_devices_exits_checkpoints_symbol(demo: Driven) -> None:
    to_kprintf(demo)
    kprintf = sym(demo, "kprintf")
    regs = demo.run("info registers").splitlines()
    assert regs[0].startswith("rax            0x")
    assert f"rip            {kprintf:#x}" in "\n".join(regs)
    assert any(r.startswith("eflags") and "[" in r for r in regs)
    assert any(r.startswith("cr0") and "PG" in r for r in regs)
    assert demo.run("info registers rip").strip().endswith(f"{kprintf:#x} <kprintf>")
    assert demo.run("i r eax").startswith("eax            0x")
    assert demo.error("info registers nope") == "Invalid register `nope'"
    devices = demo.run("info devices")
    for name in demo.dbg.session.machine.devices():
        assert re.search(rf"^{re.escape(name)}\b", devices, re.MULTILINE)
    assert demo.run("info devices uart").startswith("uart  (ports 0x3f8-0x3ff)\n    ")
    assert demo.error("info devices nope").startswith('No device "nope"')
    exits = demo.run("info exits")
    assert exits.startswith(f"VM exits up to icount {demo.dbg.session.icount}:")
    assert re.search(r"^  io\s+\d+$", exits, re.MULTILINE) and re.search(r"^  total\s+\d+$", exits, re.MULTILINE)
    assert demo.run("info checkpoints").splitlines()[1:3] == ["  #  icount  size", "  0  0       8.0 KiB"]
    assert demo.run(f"info symbol {kprintf + 4:#x}") == "kprintf + 4 in section .text\n"
    assert demo.run("info symbol 8") == "No symbol matches 8.\n"
    assert demo.error("info nope") == 'Undefined info command: "nope".  Try "help info".'
    assert "info breakpoints" in demo.run("info")


def test_events_show_the_recorded_events_around_now(demo: Driven) -> None:
    syncs = [e.icount for e in demo.dbg.session.replayer.events() if type(e).__name__ == "Sync"]
    assert len(syncs) >= 3
    here = syncs[1] + 10
    lines = demo.run(f"goto {here}", "events 1").splitlines()
    at = lines.index(f"Recorded events near icount {here}:")
    assert lines[at + 1 :] == [
        f"   @{syncs[1]} sync rip=" + lines[at + 1].split("rip=")[1],
        f"=> icount {here} (now)",
        f"   @{syncs[2]} sync rip=" + lines[at + 3].split("rip=")[1],
    ]
    assert demo.error("events 0") == "events: N must be 1 to 1000."


def test_stats_show_exits_ports_and_the_recording(demo: Driven) -> None:
    demo.run("goto end")
    out = demo.run("stats")
    assert "Busiest I/O ports:" in out
    assert re.search(r"^  0x03f8  uart16550\s+\d+$", out, re.MULTILINE)
    assert "Recording: image demo, 64 MiB, cmdline 'ticks=5'" in out
    assert re.search(r"ended at icount \d+: debug-exit, exit status 1", out)


def test_list_without_line_information_says_so(demo: Driven) -> None:
    assert demo.error("list") == (
        "No line number information available (the kernel image has no line number information)."
    )


def test_prefixes_and_unknown_commands(demo: Driven) -> None:
    assert demo.run("disas kmain,1").startswith("Dump of assembler code from")
    assert demo.error("re").startswith('Ambiguous command "re": reverse-continue, reverse-finish')
    assert demo.error("frobnicate") == 'Undefined command: "frobnicate".  Try "help".'
    assert demo.error("stepi/x") == 'Command "stepi" takes no /FMT suffix.'
    assert demo.error("stepi 1 2") == "stepi: unrecognized arguments: 2"
    assert demo.error("stepi 0") == "The count must be at least 1."


def test_quit_sets_the_flag(demo: Driven) -> None:
    demo.run("quit")
    assert demo.dbg.quit_requested
    assert demo.failed == 0
