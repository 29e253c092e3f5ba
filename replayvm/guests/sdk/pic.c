/*
 * 8259A PIC pair, programmed as on every PC since the AT (8259A datasheet,
 * "Programming the 8259A": ICW1-ICW4, then OCW1 = interrupt mask, OCW2 =
 * end of interrupt, OCW3 = read ISR).
 */
#include "pic.h"

#include "x86.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1

#define ICW1_ICW4 0x01     /* ICW4 follows */
#define ICW1_INIT 0x10
#define ICW3_MASTER_SLAVE_ON_IRQ2 0x04
#define ICW3_SLAVE_ID 0x02
#define ICW4_8086 0x01
#define OCW2_EOI 0x20      /* non-specific end of interrupt */
#define OCW3_READ_ISR 0x0b

/* IMR shadow: the SDK is the only writer, so no read-back is needed. */
static uint16_t irq_mask = 0xffff;

static void write_mask(void)
{
    outb(PIC1_DATA, (uint8_t)irq_mask);
    outb(PIC2_DATA, (uint8_t)(irq_mask >> 8));
}

/* Remap IRQ 0-7 to vector_base.., IRQ 8-15 to vector_base+8..; mask all but the cascade. */
void pic_init(uint8_t vector_base)
{
    outb(PIC1_CMD, ICW1_INIT | ICW1_ICW4);
    outb(PIC2_CMD, ICW1_INIT | ICW1_ICW4);
    outb(PIC1_DATA, vector_base);
    outb(PIC2_DATA, (uint8_t)(vector_base + 8));
    outb(PIC1_DATA, ICW3_MASTER_SLAVE_ON_IRQ2);
    outb(PIC2_DATA, ICW3_SLAVE_ID);
    outb(PIC1_DATA, ICW4_8086);
    outb(PIC2_DATA, ICW4_8086);
    irq_mask = (uint16_t)~(1u << IRQ_CASCADE);
    write_mask();
}

void pic_unmask(unsigned irq)
{
    irq_mask &= (uint16_t)~(1u << irq);
    write_mask();
}

void pic_mask(unsigned irq)
{
    irq_mask |= (uint16_t)(1u << irq);
    write_mask();
}

void pic_eoi(unsigned irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, OCW2_EOI);
    outb(PIC1_CMD, OCW2_EOI);
}

static uint8_t read_isr(uint16_t cmd_port)
{
    outb(cmd_port, OCW3_READ_ISR);
    return inb(cmd_port);
}

/*
 * A request withdrawn before the INTA cycle yields IRQ 7 (or 15) with its
 * ISR bit clear (8259A datasheet, "Interrupt Sequence").  Such an
 * interrupt gets no EOI from its own PIC; a spurious IRQ 15 still needs
 * one on the master, whose cascade input was acknowledged.
 */
bool pic_is_spurious(unsigned irq)
{
    if (irq == 7 && !(read_isr(PIC1_CMD) & 0x80))
        return true;
    if (irq == 15 && !(read_isr(PIC2_CMD) & 0x80)) {
        outb(PIC1_CMD, OCW2_EOI);
        return true;
    }
    return false;
}
