"""The I/O comparison `replayvm bench` prints: virtio-blk's sequential read phase
exits orders of magnitude less per MiB than the UART's one exit per access."""

from replayvm.bench import bench_io


def test_virtio_blk_read_phase_exits_far_less_per_mib_than_the_uart() -> None:
    io = bench_io(disk_mib=4, uart_kib=8)
    blk, uart = io["virtio_blk"], io["uart"]
    assert blk["exits_per_mib"] > 0 and uart["exits_per_mib"] > 0  # type: ignore[index]
    assert uart["exits_per_mib"] >= 1000 * blk["exits_per_mib"]  # type: ignore[index]
