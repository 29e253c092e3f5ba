"""The VMM's CPUID model (DESIGN.md §2)."""

from replayvm.engine.cpuid import TSC_HZ, CpuidModel


def regs_text(*words: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def test_vendor_is_genuine_intel() -> None:
    _, b, c, d = CpuidModel().query(0, 0)
    assert regs_text(b, d, c) == b"GenuineIntel"


def test_hypervisor_bit_and_leaf() -> None:
    m = CpuidModel()
    assert m.query(1, 0)[2] & (1 << 31)
    _, b, c, d = m.query(0x40000000, 0)
    assert regs_text(b, c, d).rstrip(b"\0") == b"ReplayVM"


def test_rdrand_rdseed_monitor_xsave_apic_hidden() -> None:
    m = CpuidModel()
    _, _, ecx, edx = m.query(1, 0)
    assert not ecx & (1 << 30)  # RDRAND
    assert not ecx & (1 << 3)  # MONITOR
    assert not ecx & (1 << 26)  # XSAVE
    assert not edx & (1 << 9)  # APIC
    assert not m.query(7, 0)[1] & (1 << 18)  # RDSEED


def test_extended_leaf_ignores_garbage_subleaf() -> None:
    m = CpuidModel()
    assert m.query(0x80000001, 0xDEADBEEF) == m.query(0x80000001, 0)
    edx = m.query(0x80000001, 0x1234)[3]
    assert edx & (1 << 20) and edx & (1 << 29)  # NX, LM
    assert not edx & (1 << 26)  # no 1 GiB pages


def test_tsc_frequency_leaf_gives_one_ghz() -> None:
    a, b, c, _ = CpuidModel().query(0x15, 0)
    assert c * b // a == TSC_HZ


def test_subleaf_leaves_answer_zero_beyond_subleaf_zero() -> None:
    assert CpuidModel().query(7, 1) == (0, 0, 0, 0)
