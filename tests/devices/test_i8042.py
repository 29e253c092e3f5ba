"""i8042 keyboard controller: the probe and reboot paths Linux takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replayvm.devices.base import IrqLine
from replayvm.devices.i8042 import (
    CMD_AUX_DISABLE,
    CMD_AUX_ENABLE,
    CMD_AUX_TEST,
    CMD_KBD_DISABLE,
    CMD_KBD_ENABLE,
    CMD_KBD_TEST,
    CMD_READ_CTR,
    CMD_READ_OUTPUT_PORT,
    CMD_SELF_TEST,
    CMD_SYSTEM_RESET,
    CMD_WRITE_AUX,
    CMD_WRITE_CTR,
    CMD_WRITE_OUTPUT_PORT,
    CTR_AUX_DISABLE,
    CTR_AUX_INT,
    CTR_KBD_DISABLE,
    CTR_RESET,
    I8042,
    I8042_COMMAND,
    I8042_DATA,
    KBD_CMD_GET_ID,
    KBD_REPLY_ACK,
    KBD_TEST_OK,
    OUTPUT_A20,
    OUTPUT_PORT_RESET,
    OUTPUT_RESET,
    SELF_TEST_OK,
    STATUS_AUXDATA,
    STATUS_CMD,
    STATUS_IBF,
    STATUS_OBF,
    STATUS_SYS,
    STATUS_TIMEOUT,
)

CMD_PULSE_NOTHING = 0xFF
CMD_AUX_LOOPBACK = 0xD3


class Rig:
    def __init__(self) -> None:
        self.resets = 0
        self.kbc = I8042(self.on_reset)

    def on_reset(self) -> None:
        self.resets += 1

    def command(self, value: int) -> None:
        self.kbc.write(I8042_COMMAND, 1, value)

    def data(self, value: int) -> None:
        self.kbc.write(I8042_DATA, 1, value)

    def status(self) -> int:
        return self.kbc.read(I8042_COMMAND, 1)

    def response(self) -> int:
        assert self.status() & STATUS_OBF
        return self.kbc.read(I8042_DATA, 1)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_status_reports_empty_buffers_and_system_flag_after_reset(rig: Rig) -> None:
    status = rig.status()
    assert not status & (STATUS_OBF | STATUS_IBF)
    assert status & STATUS_SYS


def test_self_test_answers_0x55(rig: Rig) -> None:
    rig.command(CMD_SELF_TEST)
    assert rig.response() == SELF_TEST_OK


def test_interface_test_answers_0x00(rig: Rig) -> None:
    rig.command(CMD_KBD_TEST)
    assert rig.response() == KBD_TEST_OK


def test_data_read_empties_output_buffer(rig: Rig) -> None:
    rig.command(CMD_SELF_TEST)
    rig.response()
    assert not rig.status() & STATUS_OBF


def test_read_command_byte(rig: Rig) -> None:
    rig.command(CMD_READ_CTR)
    assert rig.response() == CTR_RESET


def test_write_command_byte_reads_back(rig: Rig) -> None:
    rig.command(CMD_WRITE_CTR)
    rig.data(0x65)
    rig.command(CMD_READ_CTR)
    assert rig.response() == 0x65


def test_command_byte_drives_system_flag(rig: Rig) -> None:
    rig.command(CMD_WRITE_CTR)
    rig.data(0)
    assert not rig.status() & STATUS_SYS


def test_disable_and_enable_keyboard_port(rig: Rig) -> None:
    rig.command(CMD_KBD_DISABLE)
    rig.command(CMD_READ_CTR)
    assert rig.response() & CTR_KBD_DISABLE
    rig.command(CMD_KBD_ENABLE)
    rig.command(CMD_READ_CTR)
    assert not rig.response() & CTR_KBD_DISABLE


def test_status_cmd_bit_tracks_last_port_written(rig: Rig) -> None:
    rig.command(CMD_KBD_ENABLE)
    assert rig.status() & STATUS_CMD
    rig.data(0xF4)
    assert not rig.status() & STATUS_CMD


def test_command_0xfe_pulses_reset(rig: Rig) -> None:
    rig.command(CMD_SYSTEM_RESET)
    assert rig.resets == 1


def test_pulse_without_bit0_does_not_reset(rig: Rig) -> None:
    rig.command(CMD_PULSE_NOTHING)
    assert rig.resets == 0


def test_output_port_write_with_bit0_clear_resets(rig: Rig) -> None:
    rig.command(CMD_WRITE_OUTPUT_PORT)
    rig.data(OUTPUT_A20)
    assert rig.resets == 1


def test_output_port_write_with_bit0_set_reads_back(rig: Rig) -> None:
    rig.command(CMD_READ_OUTPUT_PORT)
    assert rig.response() == OUTPUT_PORT_RESET
    rig.command(CMD_WRITE_OUTPUT_PORT)
    rig.data(OUTPUT_RESET)
    rig.command(CMD_READ_OUTPUT_PORT)
    assert rig.response() == OUTPUT_RESET
    assert rig.resets == 0


def test_keyboard_get_id_answers_ack_and_translated_id(rig: Rig) -> None:
    rig.data(KBD_CMD_GET_ID)
    assert [rig.response(), rig.response(), rig.response()] == [KBD_REPLY_ACK, 0xAB, 0x41]
    assert not rig.status() & STATUS_OBF


def test_keyboard_reset_answers_ack_and_self_test_passed(rig: Rig) -> None:
    rig.data(0xFF)
    assert [rig.response(), rig.response()] == [KBD_REPLY_ACK, 0xAA]


def test_keyboard_command_with_parameter_is_acked_twice(rig: Rig) -> None:
    rig.data(0xED)  # set LEDs
    assert rig.response() == KBD_REPLY_ACK
    rig.data(0x07)
    assert rig.response() == KBD_REPLY_ACK


def test_unknown_keyboard_byte_asks_for_resend(rig: Rig) -> None:
    rig.data(0x01)
    assert rig.response() == 0xFE


def test_aux_loopback_returns_the_byte_as_aux_data(rig: Rig) -> None:
    rig.command(CMD_AUX_LOOPBACK)
    rig.data(0x5A)
    assert rig.status() & STATUS_AUXDATA
    assert rig.response() == 0x5A


def test_aux_test_passes_and_enable_bits_follow_commands(rig: Rig) -> None:
    rig.command(CMD_AUX_TEST)
    assert rig.response() == 0x00
    rig.command(CMD_AUX_DISABLE)
    rig.command(CMD_READ_CTR)
    assert rig.response() & CTR_AUX_DISABLE
    rig.command(CMD_AUX_ENABLE)
    rig.command(CMD_READ_CTR)
    assert not rig.response() & CTR_AUX_DISABLE


def test_byte_to_absent_mouse_times_out(rig: Rig) -> None:
    rig.command(CMD_WRITE_AUX)
    rig.data(0xF2)
    assert rig.status() & (STATUS_AUXDATA | STATUS_TIMEOUT) == STATUS_AUXDATA | STATUS_TIMEOUT
    assert rig.response() == 0xFE


def test_keyboard_reply_raises_irq1_only_when_enabled() -> None:
    kbd, aux = IrqLine("irq1"), IrqLine("irq12")
    kbc = I8042(lambda: None, kbd, aux)
    kbc.write(I8042_DATA, 1, KBD_CMD_GET_ID)
    assert kbd.level and not aux.level
    kbc.read(I8042_DATA, 1)
    assert kbd.raises == 2  # every byte moved into the output buffer is a new edge
    kbc.write(I8042_COMMAND, 1, CMD_WRITE_CTR)
    kbc.write(I8042_DATA, 1, 0)
    assert not kbd.level


def test_aux_loopback_raises_irq12_when_enabled() -> None:
    kbd, aux = IrqLine("irq1"), IrqLine("irq12")
    kbc = I8042(lambda: None, kbd, aux)
    kbc.write(I8042_COMMAND, 1, CMD_WRITE_CTR)
    kbc.write(I8042_DATA, 1, CTR_AUX_INT)
    kbc.write(I8042_COMMAND, 1, CMD_AUX_LOOPBACK)
    kbc.write(I8042_DATA, 1, 0xA5)
    assert aux.level and not kbd.level
    assert kbc.read(I8042_DATA, 1) == 0xA5
    assert not aux.level


def test_save_load_state_round_trip(rig: Rig) -> None:
    rig.command(CMD_WRITE_CTR)
    rig.data(0x61)
    rig.command(CMD_SELF_TEST)
    rig.command(CMD_WRITE_OUTPUT_PORT)
    state = rig.kbc.save_state()
    other = Rig()
    other.kbc.load_state(state)
    assert other.kbc.save_state() == state
    other.data(OUTPUT_RESET)
    rig.data(OUTPUT_RESET)
    assert other.kbc.save_state() == rig.kbc.save_state()
    assert other.status() == rig.status()


@given(st.lists(st.tuples(st.sampled_from([I8042_DATA, I8042_COMMAND, 1, 7]), st.integers(0, 255), st.booleans())))
def test_random_accesses_never_raise(ops: list[tuple[int, int, bool]]) -> None:
    rig = Rig()
    for offset, value, is_write in ops:
        if is_write:
            rig.kbc.write(offset, 1, value)
        else:
            assert 0 <= rig.kbc.read(offset, 1) <= 0xFF
