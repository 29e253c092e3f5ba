/* Intel 8259A programmable interrupt controller pair (master 0x20, slave 0xa0). */
#ifndef SDK_PIC_H
#define SDK_PIC_H

#include <stdbool.h>
#include <stdint.h>

#define IRQ_PIT 0
#define IRQ_CASCADE 2
#define IRQ_COM1 4

void pic_init(uint8_t vector_base);
void pic_unmask(unsigned irq);
void pic_mask(unsigned irq);
void pic_eoi(unsigned irq);
bool pic_is_spurious(unsigned irq);

#endif
