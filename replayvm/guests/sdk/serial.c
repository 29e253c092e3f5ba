/*
 * COM1 16550 driver (National Semiconductor PC16550D datasheet, table II
 * "Summary of Registers").  Output is polled on LSR.THRE; input is
 * interrupt driven (IER.ERBFI, IRQ 4) into a ring buffer.
 */
#include "serial.h"

#include <stdbool.h>

#include "pic.h"
#include "trap.h"
#include "x86.h"

#define COM1 0x3f8

#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_DLL 0 /* DLAB=1 */
#define UART_IER 1 /* DLAB=0 */
#define UART_DLM 1 /* DLAB=1 */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5

#define IER_RDA 0x01        /* received data available */
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04   /* trigger level bits 7:6 = 00: 1 byte */
#define LCR_8N1 0x03
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT2 0x08       /* gates the UART's interrupt onto the ISA bus */
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define UART_CLOCK_DIVISOR_115200 1 /* 1.8432 MHz / (16 * 115200) */

#define RX_RING_SIZE 256 /* power of two */

static volatile uint8_t rx_ring[RX_RING_SIZE];
static volatile unsigned rx_head; /* written by the IRQ handler */
static volatile unsigned rx_tail; /* written by the reader */
static volatile uint64_t rx_dropped;

static void uart_out(uint16_t reg, uint8_t v)
{
    outb((uint16_t)(COM1 + reg), v);
}

static uint8_t uart_in(uint16_t reg)
{
    return inb((uint16_t)(COM1 + reg));
}

/*
 * 115200 8N1, FIFOs on.  Switching into FIFO mode clears the receiver
 * (PC16550D, FCR bit 0), so if a byte is already waiting -- input piped in
 * before the guest started -- the UART stays in 16450 mode and keeps it.
 */
void serial_init(void)
{
    bool input_waiting = (uart_in(UART_LSR) & LSR_DR) != 0;

    if (!input_waiting)
        uart_out(UART_FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX);
    uart_out(UART_IER, 0);
    uart_out(UART_LCR, LCR_DLAB);
    uart_out(UART_DLL, UART_CLOCK_DIVISOR_115200);
    uart_out(UART_DLM, 0);
    uart_out(UART_LCR, LCR_8N1);
    uart_out(UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
}

static void put_raw(char c)
{
    while (!(uart_in(UART_LSR) & LSR_THRE))
        ;
    uart_out(UART_THR, (uint8_t)c);
}

void serial_putc(char c)
{
    if (c == '\n')
        put_raw('\r');
    put_raw(c);
}

void serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        serial_putc(s[i]);
}

void serial_flush(void)
{
    while (!(uart_in(UART_LSR) & LSR_TEMT))
        ;
}

static void com1_irq(struct trap_frame *frame)
{
    (void)frame;
    while (uart_in(UART_LSR) & LSR_DR) {
        uint8_t c = uart_in(UART_RBR);
        if (rx_head - rx_tail < RX_RING_SIZE) {
            rx_ring[rx_head % RX_RING_SIZE] = c;
            rx_head = rx_head + 1;
        } else {
            rx_dropped = rx_dropped + 1;
        }
    }
}

void serial_rx_enable(void)
{
    irq_set_handler(IRQ_COM1, com1_irq);
    uart_out(UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
    uart_out(UART_IER, IER_RDA);
    pic_unmask(IRQ_COM1);
}

int serial_try_getc(void)
{
    bool enabled = irq_save();
    int c = -1;

    if (rx_tail != rx_head) {
        c = rx_ring[rx_tail % RX_RING_SIZE];
        rx_tail = rx_tail + 1;
    }
    irq_restore(enabled);
    return c;
}

static bool rx_ready(void *arg)
{
    (void)arg;
    return rx_tail != rx_head;
}

int serial_getc(void)
{
    int c;

    while ((c = serial_try_getc()) < 0)
        idle_until(rx_ready, 0);
    return c;
}

uint64_t serial_rx_dropped(void)
{
    return rx_dropped;
}
