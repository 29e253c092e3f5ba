"""Legacy PC devices of the rv-pc platform (DESIGN.md §2)."""

from replayvm.devices.base import ByteDevice, Clock, Device, IrqLine, ManualClock
from replayvm.devices.bus import PortBus
from replayvm.devices.debug_exit import DebugExit
from replayvm.devices.i8042 import I8042
from replayvm.devices.pci_stub import PciConfigStub
from replayvm.devices.pic8259 import Elcr, Pic8259, Pic8259Pair
from replayvm.devices.pit8254 import Pit8254, SystemControlPortB
from replayvm.devices.rtc_cmos import CmosRtc
from replayvm.devices.uart16550 import Uart16550

__all__ = [
    "I8042",
    "ByteDevice",
    "Clock",
    "CmosRtc",
    "DebugExit",
    "Device",
    "Elcr",
    "IrqLine",
    "ManualClock",
    "PciConfigStub",
    "Pic8259",
    "Pic8259Pair",
    "Pit8254",
    "PortBus",
    "SystemControlPortB",
    "Uart16550",
]
