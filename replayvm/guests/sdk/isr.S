/*
 * Interrupt and exception entry stubs.
 *
 * In 64-bit mode the CPU always pushes SS, RSP, RFLAGS, CS, RIP (after
 * aligning RSP to 16) and, for some exceptions, an error code (Intel SDM
 * vol. 3 §6.14.2, "64-Bit Mode Stack Frame"; §6.15 lists which vectors have
 * an error code).  Each stub pushes a 0 where the CPU pushed none, then the
 * vector, so every handler sees one frame layout: struct trap_frame in
 * trap.h.  isr_common saves the general registers, calls
 * trap_dispatch(frame) and returns with IRETQ, so a handler may change any
 * saved register, RIP or RSP in the frame.
 */
#include "gdt.h"

        .file "isr.S"

        .text

.macro ISR_NOERR vec
        .type isr_stub_\vec, @function
isr_stub_\vec:
        pushq $0
        pushq $\vec
        jmp isr_common
.endm

.macro ISR_ERR vec
        .type isr_stub_\vec, @function
isr_stub_\vec:
        pushq $\vec
        jmp isr_common
.endm

/* Vectors with an error code: #DF 8, #TS 10, #NP 11, #SS 12, #GP 13,
 * #PF 14, #AC 17, #CP 21, #VC 29, #SX 30. */
.irp vec, 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19, 20, 22, 23, 24, 25, 26, 27, 28, 31
        ISR_NOERR \vec
.endr
.irp vec, 8, 10, 11, 12, 13, 14, 17, 21, 29, 30
        ISR_ERR \vec
.endr
/* IRQ 0-15 of the remapped 8259 pair: vectors 0x20-0x2f. */
.irp vec, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47
        ISR_NOERR \vec
.endr

        .type isr_common, @function
isr_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        cld                             /* the SysV ABI wants DF=0 at calls */
        call trap_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp                  /* vector and error code */
        iretq
        .size isr_common, . - isr_common

/* Stub addresses by vector: 0-31, then 0x20-0x2f. */
        .section .rodata
        .balign 8
        .globl isr_stub_table
isr_stub_table:
.irp vec, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
        .quad isr_stub_\vec
.endr
.irp vec, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47
        .quad isr_stub_\vec
.endr

        .section .note.GNU-stack, "", @progbits
