"""The PCI configuration mechanism #1 ports (PCI Local Bus Specification 3.0,
§3.2.2.3.2: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF) with no
host bridge behind them.

Every read returns all-ones and every write is dropped, so CONFIG_ADDRESS
does not read back what was written: Linux's pci_check_type1() (write
0x80000000, read it back) and pci_check_type2() both find no PCI, and the
guest sticks to the platform's virtio-mmio devices.
"""

from __future__ import annotations

from replayvm.devices.base import Device

PCI_CONFIG_ADDRESS = 0  # port 0xCF8
PCI_CONFIG_DATA = 4  # port 0xCFC
PCI_CONFIG_WINDOW = 8


class PciConfigStub(Device):
    name = "pci-config-stub"

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        pass
