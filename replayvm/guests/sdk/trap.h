/*
 * Exceptions and interrupts: 64-bit IDT, TSS, one C dispatcher.
 */
#ifndef SDK_TRAP_H
#define SDK_TRAP_H

#include <stdbool.h>
#include <stdint.h>

/* Exception vectors (Intel SDM vol. 3 §6.3.1, table 6-1). */
#define VEC_DE 0  /* divide error */
#define VEC_DB 1  /* debug */
#define VEC_NMI 2
#define VEC_BP 3  /* int3 */
#define VEC_OF 4
#define VEC_BR 5
#define VEC_UD 6  /* invalid opcode */
#define VEC_NM 7
#define VEC_DF 8  /* double fault, runs on IST1 */
#define VEC_TS 10
#define VEC_NP 11
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14 /* page fault, CR2 = linear address */
#define VEC_MF 16
#define VEC_AC 17
#define VEC_MC 18
#define VEC_XM 19
#define NUM_EXCEPTIONS 32

/* The 8259 pair is remapped to vectors IRQ_BASE..IRQ_BASE+15. */
#define IRQ_BASE 0x20
#define NUM_IRQS 16

/* #PF error code bits (SDM vol. 3 §4.7). */
#define PF_ERR_P (1u << 0)    /* 0: not present, 1: protection violation */
#define PF_ERR_W (1u << 1)    /* write access */
#define PF_ERR_U (1u << 2)    /* CPL 3 */
#define PF_ERR_RSVD (1u << 3) /* reserved bit set in a paging entry */
#define PF_ERR_I (1u << 4)    /* instruction fetch (NX or SMEP only) */

/*
 * What the stubs in isr.S leave on the stack, lowest address first: the
 * general registers, the vector, the error code (0 if the CPU pushed none),
 * then the CPU's IRETQ frame (SDM vol. 3 §6.14.2).
 */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

_Static_assert(sizeof(struct trap_frame) == 22 * 8, "trap frame layout (isr.S)");

/*
 * A handler runs with interrupts disabled and may change the frame: on
 * return the CPU resumes at frame->rip with the frame's registers.
 * A fault (e.g. #PF) resumes at the faulting instruction, which is retried.
 */
typedef void (*trap_handler_t)(struct trap_frame *frame);

void trap_init(void);
/* Entered from isr_common (isr.S) with interrupts disabled. */
void trap_dispatch(struct trap_frame *frame);
void trap_set_handler(unsigned vector, trap_handler_t handler);
/* IRQ handlers are acknowledged (EOI) by the dispatcher after they return. */
void irq_set_handler(unsigned irq, trap_handler_t handler);
const char *trap_name(unsigned vector);
/* Interrupts that arrived on a line with no handler, all lines together. */
uint64_t irq_unhandled_count(void);

/*
 * Idle in "sti; hlt" until cond(arg) is true.  The condition is checked
 * with interrupts disabled, so an interrupt cannot change it between the
 * check and the HLT.  Restores the caller's interrupt flag.
 */
void idle_until(bool (*cond)(void *arg), void *arg);

#endif
