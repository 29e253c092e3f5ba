/* Intel 8254 programmable interval timer, channel 0 on IRQ 0. */
#ifndef SDK_PIT_H
#define SDK_PIT_H

#include <stdint.h>

#define PIT_INPUT_HZ 1193182u

/* Channel 0 in mode 2 (rate generator) at about hz; returns the divisor. */
uint32_t pit_start_periodic(uint32_t hz);

#endif
