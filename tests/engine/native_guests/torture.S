/*
 * torture -- a PVH test kernel for the native instruction counter (issue 9).
 *
 * Every phase ends translation blocks early or in unusual places, and the
 * checksum it prints mixes in values that depend on the exact instruction
 * count (RDTSC, the PIT counter, the number of timer ticks), so two engines
 * that count differently print different lines:
 *
 *   smc     a store rewrites an immediate of the block it is in (QEMU's
 *           precise self-modifying-code path), and a function rewritten
 *           between calls;
 *   alias   the same virtual address (1 GiB) runs different code in two
 *           address spaces (two CR3s), with different instruction counts;
 *   faults  #PF on a data access (a page whose present bit is toggled),
 *           #PF on instruction fetch (a call into such a page, and an
 *           instruction that crosses into one), #DE, #UD, int3 and int 0x80
 *           in the middle of blocks, all resumed;
 *   loops   a one-instruction loop (`loop .`), rep movsb/stosq, repe cmpsb
 *           stopping early, rep outsb/insb on an unassigned port;
 *   io      IN, RDTSC, CPUID and a PIT counter latch in the middle of blocks.
 *
 * The PIT interrupts every ~84k instructions throughout (IRQ0 through the
 * 8259 at vector 0x20), so interrupts also land in the middle of blocks, and
 * each round ends in `sti; hlt`. Exit through isa-debug-exit with code 0.
 *
 * ELF64 PVH image at 2 MiB, one RWX load segment (the code rewrites itself).
 * GNU as, Intel syntax.
 */
        .intel_syntax noprefix

        .equ COM1, 0x3f8
        .equ DEBUG_EXIT_PORT, 0xf4
        .equ UNASSIGNED_PORT, 0x80
        .equ SEL_CODE64, 0x08
        .equ SEL_DATA, 0x10
        .equ VA_ALIAS, 0x40000000
        .equ VA_FAULT, 0x40001000
        .equ VA_FETCH, 0x40002000
        .equ VA_CROSS, 0x40003ff0           /* its last instruction crosses into 0x40004000 */
        .equ PIT_DIVISOR, 4
        .equ ROUNDS, 4

        .section .note.Xen, "a", @note
        .balign 4
        .long 4, 8, 18              /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .quad pvh_entry

/* ---- 32-bit PVH entry: paging off, flat segments ------------------------- */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        mov esp, offset stack_top
        lgdt [gdt_desc]
        mov eax, offset pml4_a
        mov cr3, eax
        mov eax, cr4
        or eax, 0x20                /* PAE */
        mov cr4, eax
        mov ecx, 0xc0000080         /* EFER.LME */
        rdmsr
        or eax, 0x100
        wrmsr
        mov eax, cr0
        or eax, 0x80010001          /* PG | WP | PE */
        mov cr0, eax
        jmp SEL_CODE64:long64

        .code64
long64:
        mov eax, SEL_DATA
        mov ds, eax
        mov es, eax
        mov ss, eax
        mov fs, eax
        mov gs, eax
        lea rsp, [rip + stack_top]
        cld
        call idt_init
        call pic_init
        call pit_init
        xor r12, r12                /* the checksum */
        mov r15, ROUNDS
round:
        sti
        call phase_smc
        call phase_alias
        call phase_faults
        call phase_loops
        call phase_io
        hlt                         /* wait for the next tick */
        rol r12, 7
        dec r15
        jnz round
        cli
        add r12, qword ptr [rip + ticks]
        lea rsi, [rip + msg_sum]
        call put_str
        mov rax, r12
        call put_hex
        lea rsi, [rip + msg_ticks]
        call put_str
        mov rax, qword ptr [rip + ticks]
        call put_hex
        lea rsi, [rip + msg_end]
        call put_str
        xor eax, eax
        out DEBUG_EXIT_PORT, al
1:      cli
        hlt
        jmp 1b

/* ---- smc ----------------------------------------------------------------- */
phase_smc:
        mov ecx, 200
        xor eax, eax
1:      mov byte ptr [rip + smc_imm], cl    /* rewrites the add just below */
        .byte 0x83, 0xc0                    /* add eax, imm8 */
smc_imm:
        .byte 0x11
        add r12, rax
        dec ecx
        jnz 1b
        mov ecx, 50
2:      mov dword ptr [rip + smc_fn_imm], ecx
        call smc_fn
        add r12, rax
        dec ecx
        jnz 2b
        ret
smc_fn:
        .byte 0xb8                          /* mov eax, imm32 */
smc_fn_imm:
        .long 0
        imul eax, eax, 3
        ret

/* ---- alias: one virtual address, two address spaces ----------------------- */
phase_alias:
        mov ecx, 40
        lea r8, [rip + pml4_a]
        lea r9, [rip + pml4_b]
        mov r10, VA_ALIAS
        mov ebx, 1
1:      mov cr3, r9
        call r10                            /* code B: 6 instructions */
        mov cr3, r8
        call r10                            /* code A: 4 instructions */
        dec ecx
        jnz 1b
        add r12, rbx
        ret

/* ---- faults in the middle of blocks --------------------------------------- */
phase_faults:
        mov ecx, 30
1:      mov eax, ecx
        add eax, 3
        mov rdi, VA_FAULT
        mov rdx, qword ptr [rdi]            /* #PF: the handler maps the page */
        add r12, rdx
        and qword ptr [rip + pt_a + 8], -2  /* not present again */
        invlpg [rdi]
        mov r10, VA_FETCH
        call r10                            /* #PF on fetch, then runs there */
        add r12, rax
        and qword ptr [rip + pt_a + 16], -2
        invlpg [r10]
        mov r10, VA_CROSS
        call r10                            /* #PF fetching the crossing instruction */
        add r12, rax
        mov r10, VA_CROSS + 0x10
        and qword ptr [rip + pt_a + 32], -2
        invlpg [r10]
        mov eax, ecx
        xor edx, edx
        xor esi, esi
        div esi                             /* #DE: skipped by the handler */
        add r12, rax
        nop
        ud2                                 /* #UD: skipped by the handler */
        add r12, 1
        inc r12
        int3
        inc r12
        int 0x80
        add r12, rcx
        dec ecx
        jnz 1b
        ret

/* ---- tight loops and string instructions ---------------------------------- */
phase_loops:
        mov ecx, 3000
1:      loop 1b                             /* a one-instruction loop */
        mov ecx, 2000
2:      dec ecx
        jnz 2b
        lea rsi, [rip + buf_a]
        lea rdi, [rip + buf_b]
        mov ecx, 1500
        rep movsb
        lea rdi, [rip + buf_b + 8]
        mov rax, r12
        mov ecx, 100
        rep stosq
        lea rsi, [rip + buf_a]
        lea rdi, [rip + buf_b]
        mov ecx, 1000
        repe cmpsb                          /* stops at buf_b + 8 */
        add r12, rcx
        lea rsi, [rip + buf_a]
        mov dx, UNASSIGNED_PORT
        mov ecx, 40
        rep outsb
        lea rdi, [rip + buf_b]
        mov ecx, 40
        rep insb
        add r12, qword ptr [rip + buf_b]
        inc byte ptr [rip + buf_a + 3]
        ret

/* ---- I/O exits in the middle of blocks ------------------------------------ */
phase_io:
        mov r11d, 20
1:      in al, 0x61
        movzx eax, al
        add r12, rax
        rdtsc
        shl rdx, 32
        or rax, rdx
        add r12, rax
        mov eax, 1
        xor ecx, ecx
        cpuid
        add r12, rbx
        xor eax, eax
        out 0x43, al                        /* latch PIT counter 0 */
        in al, 0x40
        mov ah, al
        in al, 0x40
        movzx eax, ax
        add r12, rax
        dec r11d
        jnz 1b
        ret

/* ---- interrupts and exceptions -------------------------------------------- */
idt_init:
        lea rdi, [rip + idt]
        lea rsi, [rip + isr_unexpected]
        xor ecx, ecx
1:      call set_gate
        inc ecx
        cmp ecx, 256
        jne 1b
        xor ecx, ecx
        lea rsi, [rip + isr_de]
        call set_gate
        mov ecx, 3
        lea rsi, [rip + isr_iret]
        call set_gate
        mov ecx, 6
        lea rsi, [rip + isr_ud]
        call set_gate
        mov ecx, 14
        lea rsi, [rip + isr_pf]
        call set_gate
        mov ecx, 0x20
        lea rsi, [rip + isr_irq0]
        call set_gate
        mov ecx, 0x80
        lea rsi, [rip + isr_iret]
        call set_gate
        lidt [rip + idt_desc]
        ret

set_gate:                           /* rdi = IDT, ecx = vector, rsi = handler */
        mov rdx, rcx
        shl rdx, 4
        add rdx, rdi
        mov rax, rsi
        mov word ptr [rdx], ax
        mov word ptr [rdx + 2], SEL_CODE64
        mov word ptr [rdx + 4], 0x8e00      /* present, DPL 0, interrupt gate */
        shr rax, 16
        mov word ptr [rdx + 6], ax
        shr rax, 16
        mov dword ptr [rdx + 8], eax
        mov dword ptr [rdx + 12], 0
        ret

isr_de:
isr_ud:
        add qword ptr [rsp], 2              /* skip `div esi` / `ud2` */
        inc qword ptr [rip + exceptions]
        iretq
isr_iret:
        inc qword ptr [rip + exceptions]
        iretq
isr_pf:                             /* map the page of CR2 (in pt_a) */
        push rax
        push rcx
        mov rax, cr2
        mov rcx, rax
        shr rcx, 12
        and ecx, 511
        lea rax, [rip + pt_a]
        or qword ptr [rax + rcx * 8], 1     /* present */
        mov rax, cr2
        invlpg [rax]
        pop rcx
        pop rax
        add rsp, 8                          /* error code */
        inc qword ptr [rip + exceptions]
        iretq
isr_irq0:
        push rax
        inc qword ptr [rip + ticks]
        mov al, 0x20
        out 0x20, al                        /* non-specific EOI */
        pop rax
        iretq
isr_unexpected:
        lea rsi, [rip + msg_unexpected]
        call put_str
        mov al, 1
        out DEBUG_EXIT_PORT, al
1:      cli
        hlt
        jmp 1b

pic_init:
        mov al, 0x11
        out 0x20, al
        out 0xa0, al
        mov al, 0x20
        out 0x21, al
        mov al, 0x28
        out 0xa1, al
        mov al, 4
        out 0x21, al
        mov al, 2
        out 0xa1, al
        mov al, 1
        out 0x21, al
        out 0xa1, al
        mov al, 0xfe                        /* IRQ0 only */
        out 0x21, al
        mov al, 0xff
        out 0xa1, al
        ret

pit_init:
        mov al, 0x34                        /* counter 0, LSB/MSB, mode 2 */
        out 0x43, al
        mov ax, PIT_DIVISOR
        out 0x40, al
        mov al, ah
        out 0x40, al
        ret

/* ---- polled COM1 output ---------------------------------------------------- */
put_char:                           /* al */
        push rdx
        push rax
        mov dx, COM1 + 5
1:      in al, dx
        test al, 0x20
        jz 1b
        pop rax
        mov dx, COM1
        out dx, al
        pop rdx
        ret

put_str:                            /* rsi: NUL-terminated */
        lodsb
        test al, al
        jz 1f
        call put_char
        jmp put_str
1:      ret

put_hex:                            /* rax, 16 digits */
        mov rcx, 16
        mov rdx, rax
1:      rol rdx, 4
        mov eax, edx
        and eax, 15
        lea rsi, [rip + hexdigits]
        mov al, byte ptr [rsi + rax]
        call put_char
        dec rcx
        jnz 1b
        ret

/* ---- data ------------------------------------------------------------------ */
        .section .rodata
hexdigits:      .ascii "0123456789abcdef"
msg_sum:        .asciz "torture: checksum "
msg_ticks:      .asciz " ticks "
msg_end:        .asciz "\r\n"
msg_unexpected: .asciz "torture: unexpected exception\r\n"

        .section .data
        .balign 8
gdt:
        .quad 0
        .quad 0x00209a0000000000            /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff            /* 0x10: data */
gdt_desc:
        .word gdt_desc - gdt - 1
        .quad gdt
idt_desc:
        .word 256 * 16 - 1
        .quad idt
ticks:          .quad 0
exceptions:     .quad 0

        .balign 4096
pml4_a: .quad pdpt_a + 3
        .fill 511, 8, 0
pml4_b: .quad pdpt_b + 3
        .fill 511, 8, 0
pdpt_a: .quad pd_low + 3
        .quad pd_hi_a + 3
        .fill 510, 8, 0
pdpt_b: .quad pd_low + 3
        .quad pd_hi_b + 3
        .fill 510, 8, 0
pd_low:                                     /* first 1 GiB, 2 MiB pages */
        .set page, 0
        .rept 512
        .quad (page << 21) | 0x83
        .set page, page + 1
        .endr
pd_hi_a: .quad pt_a + 3
        .fill 511, 8, 0
pd_hi_b: .quad pt_b + 3
        .fill 511, 8, 0
pt_a:   .quad page_code_a + 3               /* VA_ALIAS */
        .quad page_data + 2                 /* VA_FAULT, not present yet */
        .quad page_fetch + 2                /* VA_FETCH, not present yet */
        .quad page_cross_lo + 3             /* VA_CROSS's page */
        .quad page_cross_hi + 2             /* the next one, not present yet */
        .fill 507, 8, 0
pt_b:   .quad page_code_b + 3
        .quad page_data + 3
        .fill 510, 8, 0

        .balign 4096
page_code_a:                                /* at VA_ALIAS in address space A */
        mov eax, 1
        add ebx, eax
        rol ebx, 3
        ret
        .balign 4096
page_code_b:                                /* at VA_ALIAS in address space B */
        mov eax, 2
        imul ebx, ebx, 7
        xor ebx, 0x55
        nop
        nop
        ret
        .balign 4096
page_fetch:                                 /* at VA_FETCH */
        mov eax, 7
        imul eax, ecx
        ret
        .balign 4096
page_cross_lo:                              /* at VA_CROSS & ~0xfff */
        .fill 0xff0, 1, 0xcc
        .fill 13, 1, 0x90                   /* 13 x nop */
        .byte 0xb8, 0x44, 0x33              /* mov eax, 0x11223344: first 3 bytes */
        .balign 4096
page_cross_hi:
        .byte 0x22, 0x11                    /* ... its last 2 bytes */
        ret
        .balign 4096
page_data:
        .quad 0x0123456789abcdef
        .balign 4096
buf_a:
        .fill 2048, 1, 0x5a
buf_b:
        .fill 2048, 1, 0

        .section .bss
        .balign 4096
idt:    .skip 256 * 16
        .balign 16
stack:  .skip 16384
stack_top:
