/*
 * irqs -- an independent PVH test kernel for ReplayVM: external interrupts
 * through a cascaded 8259A pair, driven by the 8254 PIT, the MC146818 RTC
 * and the 16550 UART.  Written from the datasheets (Intel 8259A 231468,
 * Intel 8254 231164, NS PC16550D, Motorola MC146818) and the Xen PVH ABI,
 * not from ReplayVM's guest SDK.
 *
 * ELF64 image linked at 2 MiB.  The PVH entry (32-bit protected mode, paging
 * off) maps the first 1 GiB with 2 MiB pages and enters long mode.
 *
 * Checks, in order (each prints one deterministic line):
 *   1. 8259 pair initialised with ICW1-ICW4, master vectors 0x30-0x37,
 *      slave 0x38-0x3f; IMR read back.
 *   2. PIT counter 0, mode 2, 1000 Hz: 100 IRQ0s counted in a `sti; hlt`
 *      loop, non-specific EOI; the ISR read inside the handler (OCW3).
 *   3. PIT counter latch command: a count latched before some work and read
 *      after it is larger than a count latched after the work.  Read-back
 *      command: the status byte reports mode 0, LSB/MSB access.
 *   4. PIT mode 0 (interrupt on terminal count) as a one-shot: exactly one
 *      IRQ0, acknowledged with a specific EOI.  An IRQ0 taken while the
 *      read-back status shows OUT0 still low is a stale request latched
 *      earlier (host timing on QEMU) and is not counted.
 *   5. RTC periodic interrupt (rate 6, 1024 Hz) on IRQ8 = slave IR0 =
 *      vector 0x38, register C read in the handler, specific EOIs to slave
 *      and master; during the 64 periods the one-shot PIT stays quiet.
 *   6. Interrupt-driven UART transmit: IER.ETBEI on, the IRQ4 handler sends
 *      a line one byte per THR-empty interrupt, then turns ETBEI off.
 *   7. Poll mode: with IRQ4 requested and IF=0, OCW3 poll then a read of
 *      the command port returns 0x84 and puts IR4 in service.
 *   8. Special mask mode: inside an IRQ0 handler (IR0 in service) a pending
 *      IRQ4 is held off; after OCW3 sets SMM and OCW1 masks IR0 it nests;
 *      its handler ends it with a specific EOI (a non-specific one would end
 *      IR0, the highest-priority level in service).  (SMM is set before the
 *      mask: QEMU's 8259 re-evaluates INT on OCW1 writes but not on OCW3.)
 *   9. Only with "sti-window" on the command line: a request pending while
 *      IF=0 is taken right after the instruction that follows STI
 *      (`sti; nop; cli`), as the SDM (STI: "interrupts are recognized at
 *      the instruction boundary after the next instruction") requires.
 * Exit code 0 when every check passed, 1 otherwise.
 *
 * Syntax: GNU as, Intel syntax.
 */
        .intel_syntax noprefix

        .equ COM1, 0x3f8
        .equ PIC1_CMD, 0x20
        .equ PIC1_DATA, 0x21
        .equ PIC2_CMD, 0xa0
        .equ PIC2_DATA, 0xa1
        .equ PIT_CH0, 0x40
        .equ PIT_CTRL, 0x43
        .equ CMOS_INDEX, 0x70
        .equ CMOS_DATA, 0x71
        .equ DEBUG_EXIT_PORT, 0xf4
        .equ IO_DELAY_PORT, 0x80

        .equ MASTER_BASE, 0x30
        .equ SLAVE_BASE, 0x38

        .equ PIT_HZ, 1193182
        .equ PERIODIC_COUNT, 1193   /* 1000 Hz */
        .equ ONESHOT_COUNT, 11932   /* 10 ms */
        .equ SMM_COUNT, 1193        /* 1 ms */

        .equ SEL_CODE64, 0x08
        .equ SEL_DATA, 0x10

        /* what IRQ0 / IRQ4 handlers do, by phase */
        .equ PIT_PERIODIC, 1
        .equ PIT_ONESHOT, 2
        .equ PIT_SMM, 3
        .equ UART_TX, 1
        .equ UART_SMM, 2
        .equ UART_STIWIN, 3

/* ------------------------------------------------------------------------ */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4, 8, 18              /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .quad pvh_entry

        .macro SAY text:vararg
        .pushsection .rodata
.Lsay\@: .asciz \text
        .popsection
        lea rsi, [rip + .Lsay\@]
        call put_str
        .endm

        .macro IOWAIT
        out IO_DELAY_PORT, al
        .endm

/* ------------------------------------------------------------------------ */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        mov esp, offset stack_top
        mov dword ptr [boot_info], ebx
        lgdt [gdt_desc]
        /* PML4[0] -> PDPT[0] -> PD: 512 x 2 MiB = first 1 GiB */
        mov edi, offset pml4
        xor eax, eax
        mov ecx, 3 * 1024
        cld
        rep stosd
        mov dword ptr [pml4], offset pdpt + 3
        mov dword ptr [pdpt], offset pd + 3
        mov edi, offset pd
        mov eax, 0x83               /* present, writable, PS */
        xor ecx, ecx
1:      mov dword ptr [edi + ecx * 8], eax
        add eax, 0x200000
        inc ecx
        cmp ecx, 512
        jne 1b
        mov eax, offset pml4
        mov cr3, eax
        mov eax, cr4
        or eax, 0x20                /* PAE */
        mov cr4, eax
        mov ecx, 0xc0000080         /* EFER */
        rdmsr
        or eax, 0x100               /* LME */
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
        call uart_init
        SAY "irqs: ELF64 PVH kernel at 2 MiB, long mode with 2 MiB pages\r\n"
        call idt_init
        call pic_init
        call test_pit_periodic
        call test_pit_latch
        call test_pit_oneshot_and_rtc
        call test_uart_tx_irq
        call test_pic_poll
        call test_smm
        call test_sti_window_if_asked

        mov eax, dword ptr [rip + failures]
        test eax, eax
        jnz 1f
        SAY "irqs: all checks passed, exit code 0\r\n"
        xor eax, eax
        out DEBUG_EXIT_PORT, al
        jmp 2f
1:      SAY "irqs: some checks FAILED, exit code 1\r\n"
        mov al, 1
        out DEBUG_EXIT_PORT, al
2:      cli
        hlt
        jmp 2b

/* ---- polled console ----------------------------------------------------- */
uart_init:
        mov dx, COM1 + 1
        xor eax, eax
        out dx, al                  /* IER = 0 */
        mov dx, COM1 + 3
        mov al, 0x80
        out dx, al                  /* DLAB */
        mov dx, COM1
        mov al, 1                   /* 115200 baud */
        out dx, al
        mov dx, COM1 + 1
        xor eax, eax
        out dx, al
        mov dx, COM1 + 3
        mov al, 0x03                /* 8N1 */
        out dx, al
        mov dx, COM1 + 2
        mov al, 0x07                /* FIFO on, both cleared */
        out dx, al
        mov dx, COM1 + 4
        mov al, 0x0b                /* DTR, RTS, OUT2 (IRQ driver on) */
        out dx, al
        ret

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

put_str:                            /* rsi */
        push rax
1:      mov al, byte ptr [rsi]
        inc rsi
        test al, al
        jz 2f
        call put_char
        jmp 1b
2:      pop rax
        ret

put_hex2:                           /* dil as 0xNN */
        push rax
        push rcx
        push rdx
        mov al, '0'
        call put_char
        mov al, 'x'
        call put_char
        lea rdx, [rip + hexdigits]
        movzx ecx, dil
        shr ecx, 4
        mov al, byte ptr [rdx + rcx]
        call put_char
        movzx ecx, dil
        and ecx, 15
        mov al, byte ptr [rdx + rcx]
        call put_char
        pop rdx
        pop rcx
        pop rax
        ret

put_udec:                           /* edi */
        push rax
        push rcx
        push rdx
        push rbx
        mov eax, edi
        xor ebx, ebx
        mov ecx, 10
1:      xor edx, edx
        div ecx
        push rdx
        inc ebx
        test eax, eax
        jnz 1b
2:      pop rax
        add al, '0'
        call put_char
        dec ebx
        jnz 2b
        pop rbx
        pop rdx
        pop rcx
        pop rax
        ret

/* print "yes" or "NO" (and count a failure) from ZF: ZF=1 -> yes */
put_verdict:
        jnz 1f
        SAY "yes\r\n"
        ret
1:      SAY "NO\r\n"
        inc dword ptr [rip + failures]
        ret

/* ---- IDT ---------------------------------------------------------------- */
/* edi = vector, rsi = handler; a present DPL-0 64-bit interrupt gate */
set_gate:
        push rax
        push rdi
        shl edi, 4
        lea rax, [rip + idt]
        add rdi, rax
        mov rax, rsi
        mov word ptr [rdi], ax
        mov word ptr [rdi + 2], SEL_CODE64
        mov word ptr [rdi + 4], 0x8e00
        shr rax, 16
        mov word ptr [rdi + 6], ax
        shr rax, 16
        mov dword ptr [rdi + 8], eax
        mov dword ptr [rdi + 12], 0
        pop rdi
        pop rax
        ret

idt_init:
        xor edi, edi
        lea rsi, [rip + exception_stubs]
1:      call set_gate
        add rsi, 16
        inc edi
        cmp edi, 32
        jne 1b
        mov edi, MASTER_BASE
        lea rsi, [rip + irq_stubs]
2:      call set_gate
        add rsi, 16
        inc edi
        cmp edi, MASTER_BASE + 16
        jne 2b
        lidt [rip + idt_desc]
        ret

        .balign 16
exception_stubs:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .balign 16
        push \n
        jmp exception_common
        .endr

exception_common:
        pop rbx
        SAY "irqs: unexpected exception, vector "
        mov edi, ebx
        call put_udec
        SAY "\r\n"
        mov al, 0x7e
        out DEBUG_EXIT_PORT, al
1:      cli
        hlt
        jmp 1b

        .balign 16
irq_stubs:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .balign 16
        push \n
        jmp irq_common
        .endr

irq_common:
        push rax
        push rcx
        push rdx
        push rsi
        push rdi
        push r8
        push r9
        push r10
        push r11
        mov rdi, qword ptr [rsp + 72]   /* IRQ number pushed by the stub */
        lea rax, [rip + irq_handlers]
        call qword ptr [rax + rdi * 8]
        pop r11
        pop r10
        pop r9
        pop r8
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rax
        add rsp, 8
        iretq

/* ---- 8259 ----------------------------------------------------------------- */
pic_init:
        mov al, 0x11                /* ICW1: edge, cascade, ICW4 follows */
        out PIC1_CMD, al
        IOWAIT
        out PIC2_CMD, al
        IOWAIT
        mov al, MASTER_BASE         /* ICW2 */
        out PIC1_DATA, al
        IOWAIT
        mov al, SLAVE_BASE
        out PIC2_DATA, al
        IOWAIT
        mov al, 0x04                /* ICW3: slave on IR2 */
        out PIC1_DATA, al
        IOWAIT
        mov al, 0x02                /* ICW3: slave identity 2 */
        out PIC2_DATA, al
        IOWAIT
        mov al, 0x01                /* ICW4: 8086 mode, normal EOI */
        out PIC1_DATA, al
        IOWAIT
        out PIC2_DATA, al
        IOWAIT
        mov al, 0xfb                /* OCW1: everything masked but the cascade */
        out PIC1_DATA, al
        mov al, 0xff
        out PIC2_DATA, al
        SAY "pic: vectors 0x30/0x38, imr master="
        in al, PIC1_DATA
        movzx edi, al
        call put_hex2
        SAY " slave="
        in al, PIC2_DATA
        movzx edi, al
        call put_hex2
        SAY "\r\n"
        ret

/* set (al=0) or clear mask bit cl of the master IMR */
pic_unmask_master:                  /* cl = IR */
        push rax
        in al, PIC1_DATA
        btr eax, ecx
        out PIC1_DATA, al
        pop rax
        ret
pic_mask_master:
        push rax
        in al, PIC1_DATA
        bts eax, ecx
        out PIC1_DATA, al
        pop rax
        ret

/* ZF=0 when counter 0's OUT pin is high (read-back command, status only).
 * In mode 0 OUT rises at terminal count and stays high, so an IRQ0 that
 * arrives while it is low is a stale request from an earlier programming. */
pit_out0_high:
        push rax
        mov al, 0xe2                /* read-back: COUNT# = 1, STATUS# = 0, counter 0 */
        out PIT_CTRL, al
        in al, PIT_CH0
        test al, 0x80
        pop rax
        ret

/* OCW3 "read ISR", read it, back to "read IRR" */
master_isr:                         /* -> al */
        mov al, 0x0b
        out PIC1_CMD, al
        in al, PIC1_CMD
        push rax
        mov al, 0x0a
        out PIC1_CMD, al
        pop rax
        ret

/* ---- IRQ handlers (called from irq_common with IF=0) ---------------------- */
irq0_handler:
        mov eax, dword ptr [rip + pit_phase]
        cmp eax, PIT_PERIODIC
        je irq0_periodic
        cmp eax, PIT_ONESHOT
        je irq0_oneshot
        cmp eax, PIT_SMM
        je irq0_smm
        jmp eoi_master_nonspecific

irq0_periodic:
        cmp dword ptr [rip + ticks], 0
        jne 1f
        call master_isr
        mov byte ptr [rip + isr_in_irq0], al
1:      inc dword ptr [rip + ticks]
eoi_master_nonspecific:
        mov al, 0x20
        out PIC1_CMD, al
        ret

irq0_oneshot:
        call pit_out0_high
        jz 1f                       /* stale: not counted */
        inc dword ptr [rip + oneshot_irqs]
1:
        mov al, 0x60                /* specific EOI, IR0 */
        out PIC1_CMD, al
        ret

irq0_smm:
        call pit_out0_high
        jnz 9f
        mov al, 0x60                /* stale request: end it, wait for the real one */
        out PIC1_CMD, al
        ret
9:      /* IR0 is in service.  Raise IRQ4 (THR empty) and open IF: it must
         * wait, being of lower priority than the level in service. */
        mov dx, COM1 + 1
        mov al, 0x02
        out dx, al
        sti
        mov ecx, 20000
1:      dec ecx
        jnz 1b
        cli
        mov eax, dword ptr [rip + smm_irq4]
        mov dword ptr [rip + smm_held_off], eax     /* expect 0 */
        /* Special mask mode (OCW3), then mask the level in service (OCW1):
         * a masked in-service level no longer inhibits lower priorities. */
        mov al, 0x68                /* OCW3: ESMM | SMM */
        out PIC1_CMD, al
        mov ecx, 0
        call pic_mask_master
        sti
        mov ecx, 10000000
2:      cmp dword ptr [rip + smm_irq4], 0
        jne 3f
        dec ecx
        jnz 2b
3:      cli
        mov eax, dword ptr [rip + smm_irq4]
        mov dword ptr [rip + smm_nested], eax       /* expect 1 */
        mov al, 0x48                /* OCW3: ESMM, SMM off */
        out PIC1_CMD, al
        call master_isr
        mov byte ptr [rip + isr_before_eoi0], al    /* expect 0x01 */
        mov ecx, 0
        call pic_unmask_master
        mov al, 0x60                /* specific EOI, IR0 */
        out PIC1_CMD, al
        call master_isr
        mov byte ptr [rip + isr_after_eoi0], al     /* expect 0x00 */
        mov dword ptr [rip + smm_done], 1
        ret

irq4_handler:
        mov eax, dword ptr [rip + uart_phase]
        cmp eax, UART_TX
        je irq4_tx
        cmp eax, UART_SMM
        je irq4_smm
        cmp eax, UART_STIWIN
        je irq4_stiwin
        mov dx, COM1 + 1            /* nobody wants it: quiet the UART */
        xor eax, eax
        out dx, al
        mov dx, COM1 + 2
        in al, dx
        jmp eoi_master_nonspecific

irq4_tx:
        inc dword ptr [rip + irq4_count]
        mov dx, COM1 + 2
        in al, dx                   /* IIR: reading it acknowledges THRE */
        and al, 0x0f
        cmp al, 0x02
        jne eoi_master_nonspecific
        mov ecx, dword ptr [rip + tx_pos]
        lea rsi, [rip + tx_line]
        movzx eax, byte ptr [rsi + rcx]
        test al, al
        jz 1f
        inc dword ptr [rip + tx_pos]
        mov dx, COM1
        out dx, al                  /* the next THRE interrupt follows */
        jmp eoi_master_nonspecific
1:      mov dx, COM1 + 1
        xor eax, eax
        out dx, al                  /* done: ETBEI off */
        mov dword ptr [rip + tx_done], 1
        jmp eoi_master_nonspecific

irq4_smm:
        call master_isr
        mov byte ptr [rip + isr_in_irq4], al        /* expect 0x11 */
        mov dx, COM1 + 2
        in al, dx
        mov dx, COM1 + 1
        xor eax, eax
        out dx, al
        mov al, 0x64                /* specific EOI, IR4 (SMM needs it) */
        out PIC1_CMD, al
        call master_isr
        mov byte ptr [rip + isr_after_eoi4], al     /* expect 0x01 */
        mov dword ptr [rip + smm_irq4], 1
        ret

irq4_stiwin:
        inc dword ptr [rip + stiwin_irqs]
        mov dx, COM1 + 2
        in al, dx
        mov dx, COM1 + 1
        xor eax, eax
        out dx, al
        jmp eoi_master_nonspecific

irq8_handler:
        mov al, 0x0c                /* register C: reading it acknowledges */
        out CMOS_INDEX, al
        in al, CMOS_DATA
        test al, 0x40               /* PF */
        jz 1f
        inc dword ptr [rip + rtc_pf_irqs]
        mov ecx, dword ptr [rip + oneshot_irqs]
        mov dword ptr [rip + oneshot_seen_by_rtc], ecx
1:      mov al, 0x60                /* specific EOI, slave IR0 */
        out PIC2_CMD, al
        mov al, 0x62                /* specific EOI, master IR2 (cascade) */
        out PIC1_CMD, al
        ret

/* IRQ7 / IRQ15 may be spurious: EOI only what is really in service. */
irq7_handler:
        call master_isr
        test al, 0x80
        jz 1f
        inc dword ptr [rip + unexpected_irqs]
        mov al, 0x67
        out PIC1_CMD, al
1:      ret

irq15_handler:
        mov al, 0x0b
        out PIC2_CMD, al
        in al, PIC2_CMD
        mov cl, al
        mov al, 0x0a
        out PIC2_CMD, al
        test cl, 0x80
        jz 1f
        inc dword ptr [rip + unexpected_irqs]
        mov al, 0x67
        out PIC2_CMD, al
1:      mov al, 0x62                /* the master's IR2 went in service anyway */
        out PIC1_CMD, al
        ret

unexpected_irq:
        inc dword ptr [rip + unexpected_irqs]
        mov al, 0x20
        out PIC2_CMD, al
        out PIC1_CMD, al
        ret

/* ---- 1. + 2. PIT periodic ------------------------------------------------- */
test_pit_periodic:
        mov dword ptr [rip + pit_phase], PIT_PERIODIC
        mov al, 0x34                /* counter 0, LSB then MSB, mode 2, binary */
        out PIT_CTRL, al
        mov al, PERIODIC_COUNT & 0xff
        out PIT_CH0, al
        mov al, PERIODIC_COUNT >> 8
        out PIT_CH0, al
        mov ecx, 0
        call pic_unmask_master
1:      cli
        cmp dword ptr [rip + ticks], 100
        jae 2f
        sti
        hlt
        jmp 1b
2:      mov ecx, 0
        call pic_mask_master
        SAY "pit: mode 2 at 1000 Hz, irq0 on vector 0x30 counted to "
        mov edi, dword ptr [rip + ticks]
        call put_udec
        SAY ", isr in handler "
        movzx edi, byte ptr [rip + isr_in_irq0]
        call put_hex2
        SAY "\r\n"
        cmp dword ptr [rip + ticks], 100
        je 3f
        inc dword ptr [rip + failures]
3:      cmp byte ptr [rip + isr_in_irq0], 0x01
        je 4f
        inc dword ptr [rip + failures]
4:      ret

/* ---- 3. latch and read-back ----------------------------------------------- */
pit_latch_read:                     /* -> eax = counter 0 (latched) */
        in al, PIT_CH0
        mov ah, al
        in al, PIT_CH0
        xchg al, ah
        movzx eax, ax
        ret

some_work:                          /* a few hundred microseconds of ALU work */
        push rcx
        mov ecx, 50000
        mov eax, 1
1:      imul eax, eax, 1103515245
        add eax, 12345
        dec ecx
        jnz 1b
        mov dword ptr [rip + work_sink], eax
        pop rcx
        ret

test_pit_latch:
        mov r12d, 3                 /* attempts: the count must not wrap */
1:      mov al, 0x30                /* counter 0, LSB/MSB, mode 0 */
        out PIT_CTRL, al
        mov al, 0xff
        out PIT_CH0, al
        out PIT_CH0, al             /* 65535 ticks, about 55 ms */
        call some_work              /* let it load and run */
        xor eax, eax                /* counter latch command, counter 0 */
        out PIT_CTRL, al
        call some_work              /* the latch holds while it counts on */
        call pit_latch_read
        mov r13d, eax
        xor eax, eax
        out PIT_CTRL, al
        call pit_latch_read
        mov r14d, eax
        cmp r14d, r13d
        jb 2f
        dec r12d
        jnz 1b
2:      SAY "pit: count latched before work > count latched after: "
        cmp r14d, r13d
        setae al
        test al, al
        call put_verdict
        /* read-back: status of counter 0 only (COUNT# = 1, STATUS# = 0) */
        mov al, 0xe2
        out PIT_CTRL, al
        in al, PIT_CH0
        and al, 0x3f
        mov bl, al
        SAY "pit: read-back status (rw/mode/bcd) "
        movzx edi, bl
        call put_hex2
        SAY "\r\n"
        cmp bl, 0x30
        je 3f
        inc dword ptr [rip + failures]
3:      ret

/* ---- 4. + 5. one-shot and the RTC on the slave ----------------------------- */
test_pit_oneshot_and_rtc:
        cli
        mov ecx, 0
        call pic_mask_master
        mov dword ptr [rip + pit_phase], PIT_ONESHOT
        mov al, 0x30                /* counter 0, LSB/MSB, mode 0 */
        out PIT_CTRL, al
        mov al, ONESHOT_COUNT & 0xff
        out PIT_CH0, al
        mov al, ONESHOT_COUNT >> 8
        out PIT_CH0, al
        mov ecx, 0
        call pic_unmask_master
1:      cli
        cmp dword ptr [rip + oneshot_irqs], 0
        jne 2f
        sti
        hlt
        jmp 1b
2:      SAY "pit: mode 0 one-shot raised irq0 "
        mov edi, dword ptr [rip + oneshot_irqs]
        call put_udec
        SAY " time(s)\r\n"

        /* RTC periodic interrupt: rate 6 = 1024 Hz, PIE on. */
        mov al, 0x8c
        out CMOS_INDEX, al
        in al, CMOS_DATA            /* clear stale flags */
        mov al, 0x8a
        out CMOS_INDEX, al
        in al, CMOS_DATA
        and al, 0xf0
        or al, 0x06
        mov ah, al
        mov al, 0x8a
        out CMOS_INDEX, al
        mov al, ah
        out CMOS_DATA, al
        mov al, 0x8b
        out CMOS_INDEX, al
        in al, CMOS_DATA
        or al, 0x40                 /* PIE */
        mov ah, al
        mov al, 0x8b
        out CMOS_INDEX, al
        mov al, ah
        out CMOS_DATA, al
        in al, PIC2_DATA
        and al, 0xfe                /* slave IR0 = IRQ8 */
        out PIC2_DATA, al
3:      cli
        cmp dword ptr [rip + rtc_pf_irqs], 64
        jae 4f
        sti
        hlt
        jmp 3b
4:      in al, PIC2_DATA
        or al, 0x01
        out PIC2_DATA, al
        mov al, 0x8b
        out CMOS_INDEX, al
        in al, CMOS_DATA
        and al, 0xbf                /* PIE off */
        mov ah, al
        mov al, 0x8b
        out CMOS_INDEX, al
        mov al, ah
        out CMOS_DATA, al
        mov al, 0x8c
        out CMOS_INDEX, al
        in al, CMOS_DATA
        mov ecx, 0
        call pic_mask_master
        SAY "rtc: "
        mov edi, dword ptr [rip + rtc_pf_irqs]
        call put_udec
        SAY " periodic irqs (register c pf) on vector 0x38 via the slave\r\n"
        SAY "pit: one-shot stayed quiet for 64 rtc periods: "
        cmp dword ptr [rip + oneshot_irqs], 1
        call put_verdict
        SAY "pic: unexpected irqs so far: "
        mov edi, dword ptr [rip + unexpected_irqs]
        call put_udec
        SAY "\r\n"
        cmp dword ptr [rip + unexpected_irqs], 0
        je 5f
        inc dword ptr [rip + failures]
5:      ret

/* ---- 6. UART transmit driven by THR-empty interrupts ----------------------- */
test_uart_tx_irq:
        cli
        mov dword ptr [rip + uart_phase], UART_TX
        mov ecx, 4
        call pic_unmask_master
        mov dx, COM1 + 1
        mov al, 0x02                /* ETBEI: THR is empty, so IRQ4 now */
        out dx, al
1:      cli
        cmp dword ptr [rip + tx_done], 0
        jne 2f
        sti
        hlt
        jmp 1b
2:      mov ecx, 4
        call pic_mask_master
        SAY "uart: "
        mov edi, dword ptr [rip + tx_pos]
        call put_udec
        SAY " bytes sent from the irq4 handler using "
        mov edi, dword ptr [rip + irq4_count]
        call put_udec
        SAY " thr-empty interrupts\r\n"
        mov eax, dword ptr [rip + tx_pos]
        inc eax
        cmp eax, dword ptr [rip + irq4_count]
        je 3f
        inc dword ptr [rip + failures]
3:      ret

/* ---- 7. poll mode ------------------------------------------------------------ */
test_pic_poll:
        cli
        mov ecx, 4
        call pic_unmask_master
        mov dx, COM1 + 1
        mov al, 0x02                /* THR empty: IRQ4 requested, IF stays 0 */
        out dx, al
        mov al, 0x0c                /* OCW3: poll */
        out PIC1_CMD, al
        in al, PIC1_CMD             /* 0x80 | IR of the request, now in service */
        mov bl, al
        call master_isr
        mov bh, al
        mov dx, COM1 + 2
        in al, dx                   /* IIR: THR-empty acknowledged */
        mov dx, COM1 + 1
        xor eax, eax
        out dx, al
        mov al, 0x64                /* specific EOI, IR4 */
        out PIC1_CMD, al
        call master_isr
        mov r12b, al
        mov ecx, 4
        call pic_mask_master
        SAY "pic: poll command with irq4 pending read "
        movzx edi, bl
        call put_hex2
        SAY ", isr "
        movzx edi, bh
        call put_hex2
        SAY ", after specific eoi "
        movzx edi, r12b
        call put_hex2
        SAY "\r\n"
        cmp bl, 0x84
        jne 1f
        cmp bh, 0x10
        jne 1f
        test r12b, r12b
        jz 2f
1:      inc dword ptr [rip + failures]
2:      ret

/* ---- 8. special mask mode -------------------------------------------------- */
test_smm:
        cli
        mov dword ptr [rip + uart_phase], UART_SMM
        mov dword ptr [rip + pit_phase], PIT_SMM
        mov ecx, 4
        call pic_unmask_master
        mov al, 0x30
        out PIT_CTRL, al
        mov al, SMM_COUNT & 0xff
        out PIT_CH0, al
        mov al, SMM_COUNT >> 8
        out PIT_CH0, al
        mov ecx, 0
        call pic_unmask_master
1:      cli
        cmp dword ptr [rip + smm_done], 0
        jne 2f
        sti
        hlt
        jmp 1b
2:      mov ecx, 0
        call pic_mask_master
        mov ecx, 4
        call pic_mask_master
        SAY "pic: irq4 held off while irq0 in service: "
        cmp dword ptr [rip + smm_held_off], 0
        call put_verdict
        SAY "pic: special mask mode let irq4 nest in the irq0 handler: "
        cmp dword ptr [rip + smm_nested], 1
        call put_verdict
        SAY "pic: isr in nested irq4 "
        movzx edi, byte ptr [rip + isr_in_irq4]
        call put_hex2
        SAY ", after its specific eoi "
        movzx edi, byte ptr [rip + isr_after_eoi4]
        call put_hex2
        SAY ", before irq0 eoi "
        movzx edi, byte ptr [rip + isr_before_eoi0]
        call put_hex2
        SAY ", after "
        movzx edi, byte ptr [rip + isr_after_eoi0]
        call put_hex2
        SAY "\r\n"
        cmp byte ptr [rip + isr_in_irq4], 0x11
        jne 3f
        cmp byte ptr [rip + isr_after_eoi4], 0x01
        jne 3f
        cmp byte ptr [rip + isr_before_eoi0], 0x01
        jne 3f
        cmp byte ptr [rip + isr_after_eoi0], 0x00
        je 4f
3:      inc dword ptr [rip + failures]
4:      ret

/* ---- 9. the STI interrupt shadow, on request -------------------------------- */
test_sti_window_if_asked:
        mov rbx, qword ptr [rip + boot_info]
        mov rsi, qword ptr [rbx + 0x18]     /* cmdline_paddr */
        test rsi, rsi
        jz 9f
        lea rdi, [rip + sti_window_word]
1:      /* naive substring search for "sti-window" */
        xor ecx, ecx
2:      mov al, byte ptr [rdi + rcx]
        test al, al
        jz 5f                       /* matched the whole word */
        cmp al, byte ptr [rsi + rcx]
        jne 3f
        inc ecx
        jmp 2b
3:      cmp byte ptr [rsi], 0
        je 9f
        inc rsi
        jmp 1b
5:      cli
        mov dword ptr [rip + uart_phase], UART_STIWIN
        mov ecx, 4
        call pic_unmask_master
        mov dx, COM1 + 1
        mov al, 0x02                /* IRQ4 pending from here on, IF = 0 */
        out dx, al
        mov ecx, 1000               /* let the request settle, IF still 0 */
6:      dec ecx
        jnz 6b
        sti
        nop                         /* the STI shadow */
        cli                         /* the interrupt was taken before this */
        mov ebx, dword ptr [rip + stiwin_irqs]
7:      cmp dword ptr [rip + stiwin_irqs], 0
        jne 8f
        sti                         /* not taken: let it in now, to clean up */
        hlt
        cli
        jmp 7b
8:      mov ecx, 4
        call pic_mask_master
        SAY "cpu: irq pending under IF=0 taken right after sti; nop: "
        cmp ebx, 1
        call put_verdict
9:      ret

/* ------------------------------------------------------------------------ */
        .section .rodata
hexdigits: .ascii "0123456789abcdef"
sti_window_word: .asciz "sti-window"
tx_line: .asciz "uart: this line went out one byte per thr-empty interrupt\r\n"

        .balign 8
irq_handlers:
        .quad irq0_handler, unexpected_irq, unexpected_irq, unexpected_irq
        .quad irq4_handler, unexpected_irq, unexpected_irq, irq7_handler
        .quad irq8_handler, unexpected_irq, unexpected_irq, unexpected_irq
        .quad unexpected_irq, unexpected_irq, unexpected_irq, irq15_handler

        .balign 8
gdt:    .quad 0
        .quad 0x00af9a000000ffff    /* 0x08 code64 */
        .quad 0x00cf92000000ffff    /* 0x10 data */
gdt_end:
        .balign 8
        .word 0, 0, 0
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt
        .balign 8
        .word 0, 0, 0
idt_desc:
        .word 256 * 16 - 1
        .quad idt

/* ------------------------------------------------------------------------ */
        .section .data
        .balign 8
boot_info: .quad 0
failures: .long 0
pit_phase: .long 0
uart_phase: .long 0
ticks: .long 0
oneshot_irqs: .long 0
oneshot_seen_by_rtc: .long 0
rtc_pf_irqs: .long 0
unexpected_irqs: .long 0
irq4_count: .long 0
tx_pos: .long 0
tx_done: .long 0
smm_irq4: .long 0
smm_held_off: .long 0
smm_nested: .long 0
smm_done: .long 0
stiwin_irqs: .long 0
work_sink: .long 0
isr_in_irq0: .byte 0
isr_in_irq4: .byte 0
isr_after_eoi4: .byte 0
isr_before_eoi0: .byte 0
isr_after_eoi0: .byte 0

        .section .bss
        .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
idt:    .skip 4096
        .skip 16384
stack_top:

        .section .note.GNU-stack, "", @progbits
