"""The CPUID model the VMM presents (Intel SDM vol 2A, CPUID; DESIGN.md §2).

Unicorn would answer CPUID with its own Haswell model, which advertises the
APIC, XSAVE/AVX, RDRAND/RDSEED and MONITOR — features ReplayVM either does not
emulate or cannot make deterministic. Every CPUID exits to this table instead
(exit reason CPUID), so the guest sees one stable, documented CPU:

* hypervisor bit (leaf 1 ECX[31]) and leaf 0x40000000 "ReplayVM" signature;
* no RDRAND/RDSEED (Unicorn executes them with host entropy and cannot hook
  them), no MONITOR/MWAIT (#UD on Unicorn), no XSAVE/AVX (XSAVEC is #UD), no
  local APIC, no 1 GiB pages;
* SYSCALL/NX/LM/RDTSCP, invariant TSC, and leaf 0x15 giving the TSC frequency
  (1 GHz: one virtual nanosecond per instruction), which spares Linux the PIT
  calibration loop.

Answers depend on the leaf, and on ECX only for leaves that have subleaves:
Linux calls leaf 0x80000001 with garbage ECX and must still see NX/LM.
"""

from __future__ import annotations

TSC_HZ = 1_000_000_000
CRYSTAL_HZ = 25_000_000

# Leaf 1 EDX (Intel SDM vol 2A, table 3-11).
_FPU, _DE, _PSE, _TSC, _MSR, _PAE, _CX8 = 1 << 0, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 8
_PGE, _CMOV, _PAT, _PSE36, _CLFSH = 1 << 13, 1 << 15, 1 << 16, 1 << 17, 1 << 19
_MMX, _FXSR, _SSE, _SSE2 = 1 << 23, 1 << 24, 1 << 25, 1 << 26
# Leaf 1 ECX (table 3-10).
_SSE3, _PCLMUL, _SSSE3, _CX16, _SSE41, _SSE42, _POPCNT, _HYPERVISOR = (
    1 << 0,
    1 << 1,
    1 << 9,
    1 << 13,
    1 << 19,
    1 << 20,
    1 << 23,
    1 << 31,
)
# Leaf 0x80000001.
_LAHF_LM = 1 << 0
_SYSCALL, _NX, _RDTSCP, _LM = 1 << 11, 1 << 20, 1 << 27, 1 << 29
# Leaf 0x80000007 EDX.
_INVARIANT_TSC = 1 << 8

LEAF1_EDX = (
    _FPU | _DE | _PSE | _TSC | _MSR | _PAE | _CX8 | _PGE | _CMOV | _PAT | _PSE36 | _CLFSH | _MMX | _FXSR | _SSE | _SSE2
)
LEAF1_ECX = _SSE3 | _PCLMUL | _SSSE3 | _CX16 | _SSE41 | _SSE42 | _POPCNT | _HYPERVISOR

SUBLEAF_LEAVES = frozenset({0x4, 0x7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18})

MAX_BASIC = 0x16
MAX_EXTENDED = 0x80000008
HYPERVISOR_BASE = 0x40000000


def _sig(text: bytes) -> tuple[int, int, int]:
    text = text.ljust(12, b"\0")
    return tuple(int.from_bytes(text[i : i + 4], "little") for i in (0, 4, 8))  # type: ignore[return-value]


def _brand() -> list[tuple[int, int, int, int]]:
    raw = b"ReplayVM virtual CPU @ 1.00GHz".ljust(48, b"\0")
    words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 48, 4)]
    return [tuple(words[i : i + 4]) for i in range(0, 12, 4)]  # type: ignore[misc]


_VENDOR = _sig(b"GenuineIntel")  # EBX, EDX, ECX order below
_HV = _sig(b"ReplayVM")


class CpuidModel:
    """Maps (leaf, subleaf) to (eax, ebx, ecx, edx); a pure function, testable alone."""

    name = "replayvm-v1"

    def __init__(self) -> None:
        b = _brand()
        self._table: dict[int, tuple[int, int, int, int]] = {
            0x0: (MAX_BASIC, _VENDOR[0], _VENDOR[2], _VENDOR[1]),
            # Family 6, model 0x3C (Haswell), stepping 3; CLFLUSH line 64 B; 1 logical CPU.
            0x1: (0x000306C3, (8 << 8) | (1 << 16), LEAF1_ECX, LEAF1_EDX),
            0x15: (1, TSC_HZ // CRYSTAL_HZ, CRYSTAL_HZ, 0),
            0x16: (TSC_HZ // 1_000_000, TSC_HZ // 1_000_000, 100, 0),
            HYPERVISOR_BASE: (HYPERVISOR_BASE, _HV[0], _HV[1], _HV[2]),
            0x80000000: (MAX_EXTENDED, 0, 0, 0),
            0x80000001: (0, 0, _LAHF_LM, _SYSCALL | _NX | _RDTSCP | _LM),
            0x80000002: b[0],
            0x80000003: b[1],
            0x80000004: b[2],
            0x80000007: (0, 0, 0, _INVARIANT_TSC),
            0x80000008: (0x3028, 0, 0, 0),  # 40-bit physical, 48-bit virtual
        }

    def query(self, leaf: int, subleaf: int) -> tuple[int, int, int, int]:
        leaf &= 0xFFFFFFFF
        if leaf in SUBLEAF_LEAVES and (subleaf & 0xFFFFFFFF) != 0:
            return (0, 0, 0, 0)
        return self._table.get(leaf, (0, 0, 0, 0))
