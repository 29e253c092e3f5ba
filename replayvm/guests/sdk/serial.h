/* COM1 16550 UART: polled output, optional interrupt-driven input. */
#ifndef SDK_SERIAL_H
#define SDK_SERIAL_H

#include <stddef.h>
#include <stdint.h>

void serial_init(void);
void serial_putc(char c);                 /* "\n" goes out as "\r\n" */
void serial_write(const char *s, size_t n);
void serial_flush(void);                  /* wait until the transmitter is empty */

/* Receive through IRQ 4 into a ring buffer (PIC must be initialised). */
void serial_rx_enable(void);
int serial_try_getc(void);                /* -1 if nothing received */
int serial_getc(void);                    /* idles in hlt until a byte arrives */
uint64_t serial_rx_dropped(void);         /* bytes lost to a ful ring */

#endif
