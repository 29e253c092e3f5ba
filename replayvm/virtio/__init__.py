"""Paravirtual I/O: virtio-mmio devices (virtio 1.2) for rv-pc.

    status.py     device status bits and the transition table (§2.1, §3.1.1)
    features.py   the transport's feature bits (§2.2, §6)
    queue.py      split virtqueue, device side, hostile-driver checks (§2.7)
    mmio.py       the virtio-mmio v2 register window (§4.2)
    device.py     the back-end base class, the link to the transport, statistics
    blk.py        block device over a copy-on-write overlay (§5.2)
    net.py        network device and the NetBackend interface (§5.1)
    console.py    single-port console (§5.3)
    rng.py        entropy device (§5.4)
    responder.py  built-in ARP/ping peer at 10.0.2.2 (inet.py: its packet formats)
    pcap.py       pcap encoder for captures stamped with virtual time
    board.py      the integration API: slots, attach(), command line, statistics

Devices here follow DESIGN.md §1: no host access, no time, no randomness;
the board hands them guest memory, an IRQ line and host input values.
"""
