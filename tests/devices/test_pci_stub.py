"""No PCI host bridge: the type 1 and type 2 probes find nothing."""

from __future__ import annotations

import pytest

from replayvm.devices.pci_stub import PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA, PciConfigStub

CONFIG_ENABLE = 0x80000000


def test_config_address_does_not_read_back() -> None:
    """Linux's pci_check_type1()."""
    pci = PciConfigStub()
    pci.write(PCI_CONFIG_ADDRESS, 4, CONFIG_ENABLE)
    assert pci.read(PCI_CONFIG_ADDRESS, 4) != CONFIG_ENABLE


@pytest.mark.parametrize("offset", range(8))
@pytest.mark.parametrize("size", [1, 2, 4])
def test_all_reads_return_all_ones(offset: int, size: int) -> None:
    assert PciConfigStub().read(offset, size) == (1 << (8 * size)) - 1


def test_config_data_reads_no_device() -> None:
    pci = PciConfigStub()
    pci.write(PCI_CONFIG_ADDRESS, 4, CONFIG_ENABLE)
    pci.write(PCI_CONFIG_DATA, 4, 0x12345678)
    assert pci.read(PCI_CONFIG_DATA, 2) == 0xFFFF  # vendor ID: no function
