/*
 * polled -- an independent PVH test kernel for ReplayVM (not built on the
 * guest SDK in replayvm/guests/sdk; written from the public specs only).
 *
 * Container: ELF32 (EM_386).  The Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (18)
 * carries a 4-byte entry address, as the PVH ABI allows for 32-bit images
 * (xen/include/public/elfnote.h, docs/misc/pvh.pandoc).
 *
 * Boot: 32-bit protected mode, paging off, EBX = struct hvm_start_info.
 * We build a 4-level identity map of the first 16 MiB using 4 KiB pages only
 * (one PML4, one PDPT, one PD with 8 entries, 8 page tables of 512 PTEs),
 * enable PAE, EFER.LME and CR0.PG, and enter 64-bit mode with a far return.
 * The image is ELF32, so the 64-bit code below only uses RIP-relative memory
 * operands and 32-bit "offset" immediates (no R_X86_64_32S relocations).
 *
 * Then, in 64-bit mode, with interrupts never enabled:
 *   - COM1 programmed without FIFOs, divisor 12 (9600 baud), 7 data bits,
 *     no parity, 2 stop bits (LCR = 0x06); registers read back and printed;
 *     all output is polled (LSR.THRE) -- nothing here uses interrupts;
 *   - the hvm_start_info header (version 1 layout), the command line split
 *     into words and key=value pairs, and the memory map are printed;
 *   - the CMOS RTC time is read in BCD and then in binary mode (register B
 *     DM bit); only whether the values are in range and whether both modes
 *     agree is printed, never the time itself;
 *   - exit code 3 through isa-debug-exit (QEMU reports status 7).
 *
 * Syntax: GNU as, Intel syntax without register prefixes.
 */
        .intel_syntax noprefix

        .equ COM1, 0x3f8
        .equ UART_THR, 0
        .equ UART_DLL, 0
        .equ UART_IER, 1
        .equ UART_DLM, 1
        .equ UART_IIR, 2
        .equ UART_FCR, 2
        .equ UART_LCR, 3
        .equ UART_MCR, 4
        .equ UART_LSR, 5
        .equ UART_MSR, 6
        .equ UART_SCR, 7

        .equ LCR_7N2, 0x06          /* WLS=10 (7 bits), STB=1 (2 stop bits), no parity */
        .equ LCR_DLAB, 0x80
        .equ BAUD_9600_DIVISOR, 12  /* 1.8432 MHz / (16 * 9600) */

        .equ CMOS_INDEX, 0x70
        .equ CMOS_DATA, 0x71
        .equ CMOS_NMI_OFF, 0x80

        .equ DEBUG_EXIT_PORT, 0xf4

        .equ MSR_EFER, 0xc0000080
        .equ EFER_LME, 0x100

        .equ HVM_START_MAGIC, 0x336ec578

        .equ SEL_CODE64, 0x08
        .equ SEL_DATA, 0x10
        .equ SEL_CODE32, 0x18

        .equ MAP_PAGES, 4096        /* 16 MiB / 4 KiB */

/* ------------------------------------------------------------------------ */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4                     /* namesz: "Xen\0" */
        .long 4                     /* descsz: a 32-bit entry address */
        .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .long pvh_entry

/* ------------------------------------------------------------------------ */
/* Print a string literal (a macro keeps the literals next to their use).   */
        .macro SAY text:vararg
        .pushsection .rodata
.Lsay\@: .asciz \text
        .popsection
        mov esi, offset .Lsay\@
        call put_str
        .endm

/* ------------------------------------------------------------------------ */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        cld
        mov esp, offset boot_stack_top
        mov dword ptr [start_info_ptr], ebx

        lgdt [gdt_pointer]
        push SEL_CODE32
        push offset flat32
        retf                        /* reload CS from our own GDT */
flat32:
        mov ax, SEL_DATA
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax

        /* Clear PML4, PDPT, PD and the eight page tables (11 pages). */
        mov edi, offset pml4
        xor eax, eax
        mov ecx, (11 * 4096) / 4
        rep stosd

        /* 4096 PTEs: frame i*4 KiB, present + writable. */
        mov edi, offset page_tables
        mov eax, 0x003
        mov ecx, MAP_PAGES
1:      mov dword ptr [edi], eax
        mov dword ptr [edi + 4], 0
        add eax, 4096
        add edi, 8
        dec ecx
        jnz 1b

        /* PD entries 0..7 point at the page tables (no PS bit: 4 KiB pages). */
        mov edi, offset page_dir
        mov eax, offset page_tables
        or eax, 0x003
        mov ecx, 8
2:      mov dword ptr [edi], eax
        add eax, 4096
        add edi, 8
        dec ecx
        jnz 2b

        mov eax, offset page_dir
        or eax, 0x003
        mov dword ptr [pdpt], eax
        mov eax, offset pdpt
        or eax, 0x003
        mov dword ptr [pml4], eax

        mov eax, cr4
        or eax, 1 << 5              /* PAE */
        mov cr4, eax
        mov eax, offset pml4
        mov cr3, eax
        mov ecx, MSR_EFER
        rdmsr
        or eax, EFER_LME
        wrmsr
        mov eax, cr0
        or eax, 0x80000001          /* PG | PE */
        mov cr0, eax

        push SEL_CODE64
        push offset long_mode
        retf                        /* CS.L = 1: 64-bit mode */

/* ------------------------------------------------------------------------ */
        .code64
long_mode:
        mov ax, SEL_DATA
        mov ds, ax
        mov es, ax
        mov ss, ax
        xor eax, eax
        mov fs, ax
        mov gs, ax
        mov esp, offset boot_stack_top

        call uart_setup
        SAY "polled: ELF32 PVH kernel, long mode, 4 KiB pages, polled COM1\r\n"
        call uart_report
        call paging_report
        call start_info_report
        call rtc_report
        SAY "polled: exit code 3\r\n"
        mov al, 3
        out DEBUG_EXIT_PORT, al
9:      hlt                         /* not reached on a machine with isa-debug-exit */
        jmp 9b

/* ---- COM1 ------------------------------------------------------------------ */
uart_setup:
        mov dx, COM1 + UART_IER
        xor eax, eax
        out dx, al                  /* no interrupts */
        mov dx, COM1 + UART_FCR
        out dx, al                  /* FIFOs off */
        mov dx, COM1 + UART_LCR
        mov al, LCR_DLAB
        out dx, al
        mov dx, COM1 + UART_DLL
        mov al, BAUD_9600_DIVISOR & 0xff
        out dx, al
        mov dx, COM1 + UART_DLM
        mov al, BAUD_9600_DIVISOR >> 8
        out dx, al
        mov dx, COM1 + UART_LCR
        mov al, LCR_7N2
        out dx, al
        mov dx, COM1 + UART_MCR
        mov al, 0x03                /* DTR | RTS; OUT2 stays off: polled */
        out dx, al
        ret

/* al = byte; waits for THRE (LSR bit 5) */
put_char:
        push rdx
        push rax
        mov dx, COM1 + UART_LSR
1:      in al, dx
        test al, 0x20
        jz 1b
        pop rax
        mov dx, COM1 + UART_THR
        out dx, al
        pop rdx
        ret

/* rsi = NUL-terminated string */
put_str:
        push rax
1:      lodsb
        test al, al
        jz 2f
        call put_char
        jmp 1b
2:      pop rax
        ret

/* rdi = value, esi = number of hex digits; prints "0x" first */
put_hex:
        push rbx
        push r12
        push rcx
        mov rbx, rdi
        mov r12d, esi
        mov al, '0'
        call put_char
        mov al, 'x'
        call put_char
1:      dec r12d
        js 2f
        lea ecx, [r12 * 4]
        mov rax, rbx
        shr rax, cl
        and eax, 15
        lea rdx, [rip + hex_digits]
        mov al, byte ptr [rdx + rax]
        call put_char
        jmp 1b
2:      pop rcx
        pop r12
        pop rbx
        ret

/* rdi = unsigned value, printed in decimal */
put_dec:
        push rbx
        push rdx
        sub rsp, 32
        mov rax, rdi
        lea rbx, [rsp + 31]
        mov byte ptr [rbx], 0
        mov ecx, 10
1:      xor edx, edx
        div rcx
        add dl, '0'
        dec rbx
        mov byte ptr [rbx], dl
        test rax, rax
        jnz 1b
        mov rsi, rbx
        call put_str
        add rsp, 32
        pop rdx
        pop rbx
        ret

/* dx = port; prints "0xNN" of the byte read */
put_port_byte:
        in al, dx
        movzx edi, al
        mov esi, 2
        jmp put_hex

uart_report:
        SAY "uart: lcr="
        mov dx, COM1 + UART_LCR
        call put_port_byte
        /* divisor latch read back through DLAB */
        mov dx, COM1 + UART_LCR
        mov al, LCR_DLAB | LCR_7N2
        out dx, al
        mov dx, COM1 + UART_DLM
        in al, dx
        movzx ebx, al
        shl ebx, 8
        mov dx, COM1 + UART_DLL
        in al, dx
        or bl, al
        mov dx, COM1 + UART_LCR
        mov al, LCR_7N2
        out dx, al
        SAY " divisor="
        mov edi, ebx
        call put_dec
        SAY " ier="
        mov dx, COM1 + UART_IER
        call put_port_byte
        SAY " iir="
        mov dx, COM1 + UART_IIR
        call put_port_byte
        SAY " mcr="
        mov dx, COM1 + UART_MCR
        call put_port_byte
        SAY " lsr="
        mov dx, COM1 + UART_LSR
        call put_port_byte
        SAY " msr.lines="
        mov dx, COM1 + UART_MSR
        in al, dx
        and eax, 0xf0
        mov edi, eax
        mov esi, 2
        call put_hex
        /* scratch register keeps what is written */
        mov dx, COM1 + UART_SCR
        mov al, 0x5a
        out dx, al
        in al, dx
        mov bl, al
        mov al, 0xc3
        out dx, al
        in al, dx
        mov bh, al
        SAY " scratch="
        cmp bx, 0xc35a
        jne 1f
        SAY "ok\r\n"
        ret
1:      SAY "BAD\r\n"
        ret

/* ---- paging ---------------------------------------------------------------- */
paging_report:
        /* Walk our own tables back from CR3 for a few addresses and check that
         * each 4 KiB frame maps to itself; then touch the last mapped page. */
        mov rax, cr3
        mov ebx, offset pml4
        cmp rax, rbx
        jne 8f
        xor r8d, r8d                /* pages checked */
        xor r9d, r9d                /* mismatches */
        mov r10d, 0x0000            /* vaddr */
1:      mov rax, r10
        shr rax, 39
        and eax, 511
        mov rcx, cr3
        mov rcx, qword ptr [rcx + rax * 8]
        test cl, 1
        jz 7f
        and rcx, -4096
        mov rax, r10
        shr rax, 30
        and eax, 511
        mov rcx, qword ptr [rcx + rax * 8]
        test cl, 1
        jz 7f
        test cl, 0x80
        jnz 7f
        and rcx, -4096
        mov rax, r10
        shr rax, 21
        and eax, 511
        mov rcx, qword ptr [rcx + rax * 8]
        test cl, 1
        jz 7f
        test cl, 0x80               /* must not be a 2 MiB page */
        jnz 7f
        and rcx, -4096
        mov rax, r10
        shr rax, 12
        and eax, 511
        mov rcx, qword ptr [rcx + rax * 8]
        test cl, 1
        jz 7f
        and rcx, -4096
        cmp rcx, r10
        je 2f
7:      inc r9d
2:      inc r8d
        add r10d, 0x3000            /* every third page */
        cmp r10d, 16 << 20
        jb 1b

        /* the top page of the map is usable */
        mov edi, (16 << 20) - 4096
        mov rax, 0x1122334455667788
        mov qword ptr [rdi + 4088], rax
        mov rcx, qword ptr [rdi + 4088]
        cmp rcx, rax
        je 3f
        inc r9d
3:      SAY "paging: 4 KiB identity map of 16 MiB, "
        mov edi, r8d
        call put_dec
        SAY " pages walked from cr3, "
        mov edi, r9d
        call put_dec
        SAY " bad\r\n"
        ret
8:      SAY "paging: cr3 is not our pml4\r\n"
        ret

/* ---- hvm_start_info -------------------------------------------------------- */
start_info_report:
        mov ebx, dword ptr [rip + start_info_ptr]
        SAY "start_info: magic "
        cmp dword ptr [rbx], HVM_START_MAGIC
        jne 1f
        SAY "ok"
        jmp 2f
1:      SAY "BAD"
2:      SAY " version="
        mov edi, dword ptr [rbx + 4]
        call put_dec
        SAY " flags="
        mov edi, dword ptr [rbx + 8]
        mov esi, 8
        call put_hex
        SAY " nr_modules="
        mov edi, dword ptr [rbx + 12]
        call put_dec
        SAY "\r\n"

        /* command line */
        mov r12, qword ptr [rbx + 0x18]
        test r12, r12
        jnz 3f
        SAY "cmdline: none\r\n"
        jmp 6f
3:      SAY "cmdline: \""
        mov rsi, r12
        call put_str
        SAY "\"\r\n"
        call parse_cmdline

6:      cmp dword ptr [rbx + 4], 1
        jb 9f                       /* memmap fields exist from version 1 on */
        mov r12, qword ptr [rbx + 0x28] /* memmap_paddr */
        mov r13d, dword ptr [rbx + 0x30] /* memmap_entries */
        SAY "memmap: "
        mov edi, r13d
        call put_dec
        SAY " entries\r\n"
        xor r14d, r14d              /* entry index */
        xor r15d, r15d              /* usable RAM total */
7:      cmp r14d, r13d
        jae 8f
        SAY "  e820["
        mov edi, r14d
        call put_dec
        SAY "] base="
        mov rdi, qword ptr [r12]
        mov esi, 16
        call put_hex
        SAY " size="
        mov rdi, qword ptr [r12 + 8]
        mov esi, 16
        call put_hex
        SAY " type="
        mov edi, dword ptr [r12 + 16]
        call put_dec
        SAY "\r\n"
        cmp dword ptr [r12 + 16], 1
        jne 4f
        add r15, qword ptr [r12 + 8]
4:      add r12, 24
        inc r14d
        jmp 7b
8:      SAY "memmap: usable RAM "
        mov rdi, r15
        shr rdi, 10
        call put_dec
        SAY " KiB\r\n"
9:      ret

/* Split the command line at r12 into words; print each, and key=value words
 * as key and value.  Runs of spaces separate words. */
parse_cmdline:
        push rbx
        mov rsi, r12
        xor ebx, ebx                /* word number */
1:      mov al, byte ptr [rsi]      /* skip blanks */
        cmp al, ' '
        jne 2f
        inc rsi
        jmp 1b
2:      test al, al
        jz 9f
        /* copy the word into word_buf, remembering where '=' was */
        lea rdi, [rip + word_buf]
        lea r8, [rip + word_buf]
        xor r9d, r9d                /* pointer to the value, 0 = none */
        lea r10, [rip + word_buf + 127]
3:      mov al, byte ptr [rsi]
        test al, al
        jz 4f
        cmp al, ' '
        je 4f
        inc rsi
        cmp rdi, r10
        jae 3b                      /* over-long words are cut */
        test r9, r9
        jnz 31f
        cmp al, '='
        jne 31f
        mov byte ptr [rdi], 0
        inc rdi
        mov r9, rdi
        jmp 3b
31:     mov byte ptr [rdi], al
        inc rdi
        jmp 3b
4:      mov byte ptr [rdi], 0
        push rsi
        push r9
        SAY "  arg "
        mov edi, ebx
        call put_dec
        SAY ": "
        lea rsi, [rip + word_buf]
        call put_str
        pop r9
        test r9, r9
        jz 5f
        SAY " = \""
        mov rsi, r9
        call put_str
        SAY "\""
5:      SAY "\r\n"
        pop rsi
        inc ebx
        jmp 1b
9:      SAY "  args: "
        mov edi, ebx
        call put_dec
        SAY "\r\n"
        pop rbx
        ret

/* ---- CMOS RTC ---------------------------------------------------------------- */
/* al = register index -> al = value (NMI stays masked while we poke CMOS) */
cmos_read:
        or al, CMOS_NMI_OFF
        out CMOS_INDEX, al
        in al, CMOS_DATA
        ret

/* al = register index, ah = value */
cmos_write:
        or al, CMOS_NMI_OFF
        out CMOS_INDEX, al
        mov al, ah
        out CMOS_DATA, al
        ret

/* Wait until register A's UIP bit is clear (bounded). */
rtc_wait_uip:
        mov ecx, 1000000
1:      mov al, 0x0a
        call cmos_read
        test al, 0x80
        jz 2f
        dec ecx
        jnz 1b
2:      ret

/* Read seconds, minutes, hours, day of month, month, year into [rdi..rdi+5]. */
rtc_sample:
        push rbx
        lea rbx, [rip + rtc_regs]
        xor ecx, ecx
1:      movzx eax, byte ptr [rbx + rcx]
        push rcx
        call cmos_read
        pop rcx
        mov byte ptr [rdi + rcx], al
        inc ecx
        cmp ecx, 6
        jb 1b
        pop rbx
        ret

/* al = packed BCD -> al = binary */
bcd_to_bin:
        push rcx
        mov cl, al
        shr al, 4
        mov ch, 10
        mul ch
        and cl, 0x0f
        add al, cl
        pop rcx
        ret

rtc_report:
        mov al, 0x0b
        call cmos_read
        mov byte ptr [rip + rtc_b_saved], al

        mov r12d, 5                 /* attempts (a second may tick in between) */
1:      /* 24-hour BCD sample */
        mov al, byte ptr [rip + rtc_b_saved]
        and al, 0xfb
        or al, 0x02
        mov ah, al
        mov al, 0x0b
        call cmos_write
        call rtc_wait_uip
        lea rdi, [rip + rtc_bcd]
        call rtc_sample
        /* 24-hour binary sample: register B DM = 1 */
        mov al, byte ptr [rip + rtc_b_saved]
        or al, 0x06
        mov ah, al
        mov al, 0x0b
        call cmos_write
        lea rdi, [rip + rtc_bin]
        call rtc_sample
        /* same instant? compare field by field */
        xor ecx, ecx
        xor r13d, r13d              /* mismatches */
2:      lea rsi, [rip + rtc_bcd]
        mov al, byte ptr [rsi + rcx]
        call bcd_to_bin
        lea rsi, [rip + rtc_bin]
        cmp al, byte ptr [rsi + rcx]
        je 3f
        inc r13d
3:      inc ecx
        cmp ecx, 6
        jb 2b
        test r13d, r13d
        jz 4f
        dec r12d
        jnz 1b
4:
        /* range checks on the binary sample */
        lea rsi, [rip + rtc_bin]
        lea rdx, [rip + rtc_limits]
        xor ecx, ecx
        xor r14d, r14d              /* out of range */
5:      mov al, byte ptr [rsi + rcx]
        cmp al, byte ptr [rdx + rcx * 2]
        jb 6f
        cmp al, byte ptr [rdx + rcx * 2 + 1]
        jbe 7f
6:      inc r14d
7:      inc ecx
        cmp ecx, 6
        jb 5b

        mov al, 0x0b
        call cmos_read
        mov bl, al
        SAY "rtc: register b dm="
        movzx edi, bl
        shr edi, 2
        and edi, 1
        call put_dec
        SAY " 24h="
        movzx edi, bl
        shr edi, 1
        and edi, 1
        call put_dec
        SAY "\r\nrtc: binary fields in range: "
        test r14d, r14d
        jnz 8f
        SAY "yes\r\n"
        jmp 9f
8:      SAY "NO\r\n"
9:      SAY "rtc: binary and bcd samples agree: "
        test r13d, r13d
        jnz 10f
        SAY "yes\r\n"
        ret
10:     SAY "NO\r\n"
        ret

/* ------------------------------------------------------------------------ */
        .section .rodata
hex_digits:
        .ascii "0123456789abcdef"
rtc_regs:                           /* seconds, minutes, hours, day, month, year */
        .byte 0x00, 0x02, 0x04, 0x07, 0x08, 0x09
rtc_limits:                         /* inclusive (min, max) per field */
        .byte 0, 59,  0, 59,  0, 23,  1, 31,  1, 12,  0, 99

        .balign 8
gdt:
        .quad 0                     /* null */
        .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
        .quad 0x00cf92000000ffff    /* 0x10: flat data */
        .quad 0x00cf9a000000ffff    /* 0x18: flat 32-bit code */
gdt_end:
gdt_pointer:
        .word gdt_end - gdt - 1
        .long gdt

/* ------------------------------------------------------------------------ */
        .section .bss
        .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096
page_dir: .skip 4096
page_tables: .skip 8 * 4096
        .skip 8192
boot_stack_top:
start_info_ptr: .skip 4
rtc_b_saved: .skip 1
rtc_bcd: .skip 8
rtc_bin: .skip 8
word_buf: .skip 128

        .section .note.GNU-stack, "", @progbits
