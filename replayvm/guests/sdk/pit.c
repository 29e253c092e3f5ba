/*
 * 8254 PIT (8254 datasheet: control word format, mode 2 "rate
 * generator"): OUT0 drives IRQ 0 once every `divisor` input clocks.
 */
#include "pit.h"

#include "sdk.h"
#include "x86.h"

#define PIT_CHANNEL0 0x40
#define PIT_COMMAND 0x43

#define PIT_SELECT_CHANNEL0 (0u << 6)
#define PIT_ACCESS_LOHI (3u << 4)
#define PIT_MODE2 (2u << 1)
#define PIT_BINARY 0u

uint32_t pit_start_periodic(uint32_t hz)
{
    uint32_t divisor;

    if (hz == 0)
        panic("pit: frequency 0");
    divisor = (PIT_INPUT_HZ + hz / 2) / hz;
    if (divisor < 2 || divisor > 65536)
        panic("pit: %u Hz is out of range", hz);

    outb(PIT_COMMAND, PIT_SELECT_CHANNEL0 | PIT_ACCESS_LOHI | PIT_MODE2 | PIT_BINARY);
    /* A count of 0 means 65536. */
    outb(PIT_CHANNEL0, (uint8_t)divisor);
    outb(PIT_CHANNEL0, (uint8_t)(divisor >> 8));
    return divisor;
}
