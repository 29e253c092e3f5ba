/*
 * PVH entry: from 32-bit protected mode to kmain() in 64-bit long mode.
 *
 * The loader (QEMU, ReplayVM) finds XEN_ELFNOTE_PHYS32_ENTRY in the PT_NOTE
 * segment and enters there with paging off, flat 32-bit CS/DS/ES/SS and
 * EBX = physical address of struct hvm_start_info (Xen public/arch-x86/hvm/
 * start_info.h).  Nothing else is defined: no stack, no usable GDT.
 *
 * Long mode is entered as in Intel SDM vol. 3 §10.8.5 ("Initializing IA-32e
 * Mode"): CR4.PAE, CR3 = PML4, EFER.LME, then CR0.PG, then a far jump to a
 * 64-bit code segment.  The first 4 GiB are identity mapped with 2 MiB pages
 * (1 GiB pages are not used: the CPU need not report them).
 */
#include "gdt.h"

        .file "start.S"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)

#define CR0_PE (1 << 0)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)

#define PTE_P (1 << 0)
#define PTE_W (1 << 1)
#define PTE_PS (1 << 7)

#define CPUID_EXT_LM_BIT 29 /* CPUID 0x80000001 EDX: long mode */
#define CPUID_EXT_NX_BIT 20 /* CPUID 0x80000001 EDX: execute disable */

#define COM1 0x3f8
#define UART_LSR 5
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xf4
#define EXIT_PANIC 0x7f

#define BOOT_STACK_SIZE 16384

/*
 * ELF note: namesz, descsz, type, name and desc each padded to 4 bytes.
 * The desc is 8 bytes like Linux's (_ASM_PTR): QEMU 7.2 reads a 64-bit
 * value here.  Loaders that expect 32 bits read the low half.
 */
        .section .note.Xen, "a", @note
        .balign 4
        .long 2f - 1f
        .long 4f - 3f
        .long XEN_ELFNOTE_PHYS32_ENTRY
1:      .asciz "Xen"
2:      .balign 4
3:      .quad pvh_start32
4:      .balign 4

        .section .text.boot, "ax"
        .code32
        .globl pvh_start32
        .type pvh_start32, @function
pvh_start32:
        cli
        cld
        movl %ebx, %esi                 /* start_info, kept while BSS is cleared */

        lgdt gdt_desc
        ljmp $GDT_CODE32, $1f
1:      movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs

        /* The loader need not zero .bss: do it here (linker.ld aligns it to 8). */
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl

        movl %esi, boot_start_info
        movl $boot_stack_top, %esp

        movl $0x80000000, %eax
        xorl %ecx, %ecx
        cpuid
        cmpl $0x80000001, %eax
        jb no_long_mode
        movl $0x80000001, %eax
        xorl %ecx, %ecx
        cpuid
        btl $CPUID_EXT_LM_BIT, %edx
        jnc no_long_mode
        movl %edx, %ebp                 /* extended features, for NX below */

        /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories. */
        movl $boot_pdpt + (PTE_P | PTE_W), boot_pml4
        movl $boot_pd + (PTE_P | PTE_W), %eax
        xorl %ecx, %ecx
2:      movl %eax, boot_pdpt(, %ecx, 8)
        addl $4096, %eax
        incl %ecx
        cmpl $4, %ecx
        jne 2b

        /* 2048 PDEs of 2 MiB pages: entry i maps physical i * 2 MiB. */
        movl $(PTE_P | PTE_W | PTE_PS), %eax
        xorl %ecx, %ecx
3:      movl %eax, boot_pd(, %ecx, 8)
        addl $0x200000, %eax
        incl %ecx
        cmpl $2048, %ecx
        jne 3b

        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3

        /* EFER.NXE only if the CPU has NX: setting it otherwise is a #GP. */
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        btl $CPUID_EXT_NX_BIT, %ebp
        jnc 4f
        orl $EFER_NXE, %eax
4:      wrmsr

        /* CR0.WP: supervisor writes honour read-only pages (used by guests). */
        movl %cr0, %eax
        orl $(CR0_PE | CR0_WP | CR0_PG), %eax
        movl %eax, %cr0
        ljmp $GDT_CODE64, $long_mode_entry

/* No long mode: say so on COM1 (polled, as left by the firmware) and exit. */
no_long_mode:
        movl $msg_no_long_mode, %esi
5:      movw $(COM1 + UART_LSR), %dx
6:      inb %dx, %al
        testb $LSR_THRE, %al
        jz 6b
        lodsb
        testb %al, %al
        jz 7f
        movw $COM1, %dx
        outb %al, %dx
        jmp 5b
7:      movb $EXIT_PANIC, %al
        outb %al, $DEBUG_EXIT_PORT
8:      hlt
        jmp 8b
        .size pvh_start32, . - pvh_start32

        .code64
        .type long_mode_entry, @function
long_mode_entry:
        movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        xorl %eax, %eax
        movl %eax, %fs
        movl %eax, %gs
        movq $boot_stack_top, %rsp
        xorl %ebp, %ebp                 /* end of the frame-pointer chain */
        movl boot_start_info(%rip), %edi
        call sdk_main
9:      cli
        hlt
        jmp 9b
        .size long_mode_entry, . - long_mode_entry

        .section .rodata
msg_no_long_mode:
        .asciz "panic: CPU has no long mode (CPUID 0x80000001 EDX bit 29)\r\n"

/*
 * GDT (SDM vol. 3 §3.4.5): accessed bits preset so the CPU never writes it
 * on a segment load.  Descriptor 0x20 is the TSS, filled in by trap_init().
 */
        .data
        .balign 16
        .globl gdt
gdt:
        .quad 0
        .quad 0x00cf9b000000ffff        /* GDT_CODE32: base 0, 4 GiB, D=1 */
        .quad 0x00cf93000000ffff        /* GDT_DATA: base 0, 4 GiB, writable */
        .quad 0x00af9b000000ffff        /* GDT_CODE64: L=1, D=0 */
        .quad 0, 0                      /* GDT_TSS */
gdt_end:

        .balign 8
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt                       /* LGDT reads 4 bytes of base in 32-bit mode */

        .globl boot_start_info
boot_start_info:
        .long 0

        .bss
        .balign 4096
        .globl boot_pml4
boot_pml4:
        .skip 4096
boot_pdpt:
        .skip 4096
boot_pd:
        .skip 4 * 4096

        .balign 16
boot_stack:
        .skip BOOT_STACK_SIZE
        .globl boot_stack_top
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
