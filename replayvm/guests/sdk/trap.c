/*
 * IDT, TSS and the trap dispatcher.
 *
 * IDT gates are 16-byte 64-bit interrupt gates (Intel SDM vol. 3 §6.14.1,
 * figure 6-8): the CPU clears IF on entry, so handlers are not reentered.
 * The TSS (SDM vol. 3 §8.7, figure 8-11) gives RSP0 and an interrupt
 * stack table entry: #DF always runs on a known-good stack (IST1), so a
 * kernel stack overflow ends in a panic message instead of a triple fault.
 */
#include "trap.h"

#include "gdt.h"
#include "pic.h"
#include "printf.h"
#include "sdk.h"
#include "x86.h"

#define GATE_INTERRUPT_64 0x8e /* P=1, DPL=0, type 0xE */
#define TSS_AVAILABLE_64 0x89  /* P=1, DPL=0, type 0x9 */
#define DF_IST 1
#define DF_STACK_SIZE 4096

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct table_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");
_Static_assert(sizeof(struct tss64) == 104, "TSS layout");

extern uint64_t gdt[];                   /* start.S */
extern char boot_stack_top[];            /* start.S */
extern const uint64_t isr_stub_table[NUM_EXCEPTIONS + NUM_IRQS]; /* isr.S */

static struct idt_gate idt[IRQ_BASE + NUM_IRQS] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static uint8_t df_stack[DF_STACK_SIZE] __attribute__((aligned(16)));
static trap_handler_t exception_handlers[NUM_EXCEPTIONS];
static trap_handler_t irq_handlers[NUM_IRQS];
static uint64_t unhandled_irqs;

static const char *const exception_names[NUM_EXCEPTIONS] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available",
    "#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
    "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check",
    "#MC machine check", "#XM SIMD exception", "#VE virtualization",
    "#CP control protection", "reserved 22", "reserved 23", "reserved 24",
    "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31",
};

const char *trap_name(unsigned vector)
{
    if (vector < NUM_EXCEPTIONS)
        return exception_names[vector];
    if (vector >= IRQ_BASE && vector < IRQ_BASE + NUM_IRQS)
        return "IRQ";
    return "unknown";
}

static void set_gate(unsigned vector, uint64_t handler, uint8_t ist)
{
    struct idt_gate *g = &idt[vector];

    g->offset_low = (uint16_t)handler;
    g->selector = GDT_CODE64;
    g->ist = ist;
    g->type_attr = GATE_INTERRUPT_64;
    g->offset_mid = (uint16_t)(handler >> 16);
    g->offset_high = (uint32_t)(handler >> 32);
    g->reserved = 0;
}

/* 16-byte system descriptor (SDM vol. 3 §8.2.3, figure 8-4). */
static void install_tss(void)
{
    uint64_t base = (uint64_t)&tss;
    uint64_t limit = sizeof(tss) - 1;

    tss.rsp[0] = (uint64_t)boot_stack_top;
    tss.ist[DF_IST - 1] = (uint64_t)(df_stack + DF_STACK_SIZE);
    tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */

    gdt[GDT_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
                       ((uint64_t)TSS_AVAILABLE_64 << 40) |
                       (((limit >> 16) & 0xf) << 48) |
                       (((base >> 24) & 0xff) << 56);
    gdt[GDT_TSS / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(GDT_TSS));
}

void trap_init(void)
{
    struct table_pointer idtr;

    install_tss();
    for (unsigned v = 0; v < NUM_EXCEPTIONS; v++)
        set_gate(v, isr_stub_table[v], v == VEC_DF ? DF_IST : 0);
    for (unsigned i = 0; i < NUM_IRQS; i++)
        set_gate(IRQ_BASE + i, isr_stub_table[NUM_EXCEPTIONS + i], 0);

    idtr.limit = sizeof(idt) - 1;
    idtr.base = (uint64_t)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void trap_set_handler(unsigned vector, trap_handler_t handler)
{
    if (vector >= NUM_EXCEPTIONS)
        panic("trap_set_handler: vector %u is not an exception", vector);
    exception_handlers[vector] = handler;
}

void irq_set_handler(unsigned irq, trap_handler_t handler)
{
    if (irq >= NUM_IRQS)
        panic("irq_set_handler: no IRQ %u", irq);
    irq_handlers[irq] = handler;
}

uint64_t irq_unhandled_count(void)
{
    return unhandled_irqs;
}

static void dump_frame(const struct trap_frame *f)
{
    kprintf("  rip=%016lx cs=%04lx rflags=%016lx\n", f->rip, f->cs, f->rflags);
    kprintf("  rsp=%016lx ss=%04lx cr2=%016lx cr3=%016lx\n", f->rsp, f->ss,
            read_cr2(), read_cr3());
    kprintf("  rax=%016lx rbx=%016lx rcx=%016lx rdx=%016lx\n", f->rax, f->rbx,
            f->rcx, f->rdx);
    kprintf("  rsi=%016lx rdi=%016lx rbp=%016lx r8 =%016lx\n", f->rsi, f->rdi,
            f->rbp, f->r8);
    kprintf("  r9 =%016lx r10=%016lx r11=%016lx r12=%016lx\n", f->r9, f->r10,
            f->r11, f->r12);
    kprintf("  r13=%016lx r14=%016lx r15=%016lx\n", f->r13, f->r14, f->r15);
}

static void dispatch_irq(struct trap_frame *f)
{
    unsigned irq = (unsigned)f->vector - IRQ_BASE;

    if (pic_is_spurious(irq))
        return;
    if (irq_handlers[irq])
        irq_handlers[irq](f);
    else
        unhandled_irqs++;
    pic_eoi(irq);
}

void trap_dispatch(struct trap_frame *f)
{
    if (f->vector >= IRQ_BASE && f->vector < IRQ_BASE + NUM_IRQS) {
        dispatch_irq(f);
        return;
    }
    if (f->vector < NUM_EXCEPTIONS && exception_handlers[f->vector]) {
        exception_handlers[f->vector](f);
        return;
    }
    kprintf("panic: unhandled exception %s (vector %lu), error code 0x%lx\n",
            trap_name((unsigned)f->vector), f->vector, f->error_code);
    dump_frame(f);
    guest_exit(GUEST_EXIT_PANIC);
}

void idle_until(bool (*cond)(void *arg), void *arg)
{
    bool enabled = irq_save();

    while (!cond(arg)) {
        sti_hlt();
        cli();
    }
    irq_restore(enabled);
}
