/*
 * faults -- an independent PVH test kernel for ReplayVM: exceptions,
 * IST stacks, privilege changes.  Entry, descriptor tables, trap stubs and
 * the ring-3 code live here (GNU as, Intel syntax); the checks are in
 * faults_main.c.  Written from the Intel SDM vol. 3A (ch. 4 paging, ch. 6
 * interrupts, ch. 7 tasks/TSS) and the Xen PVH ABI, independently of
 * ReplayVM's guest SDK.
 *
 * Selectors: 0x08 kernel code (64-bit), 0x10 kernel data, 0x18 user data
 * (DPL 3), 0x20 user code (64-bit, DPL 3), 0x28 TSS (16-byte descriptor,
 * filled in by C), 0x38 flat 32-bit code used only during boot.
 */
        .intel_syntax noprefix

        .equ KCODE, 0x08
        .equ KDATA, 0x10
        .equ UDATA, 0x18
        .equ UCODE, 0x20
        .equ BOOT32, 0x38

        .equ SUPERVISOR_PAGE_VA, 0x40003000    /* see faults_main.c */

        .section .note.Xen, "a", @note
        .balign 4
        .long 4, 8, 18
        .asciz "Xen"
        .quad pvh_entry

/* ---- 32-bit PVH entry ------------------------------------------------------ */
        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        mov esp, offset kstack_top
        mov dword ptr [pvh_start_info], ebx
        lgdt [gdt_ptr]
        jmp BOOT32:1f
1:      mov eax, KDATA
        mov ds, eax
        mov es, eax
        mov ss, eax

        /* Boot map: 16 MiB with 2 MiB pages.  PD[2] (4-6 MiB) is the only
         * user-accessible range; upper levels allow user so the leaf decides.
         * faults_main.c adds the 4 KiB test pages at 1 GiB later. */
        mov edi, offset boot_pml4
        xor eax, eax
        mov ecx, 3 * 1024
        rep stosd
        mov dword ptr [boot_pml4], offset boot_pdpt + 7
        mov dword ptr [boot_pdpt], offset boot_pd + 7
        xor ecx, ecx
2:      mov eax, ecx
        shl eax, 21
        or eax, 0x83                /* P | W | PS */
        cmp ecx, 2
        jne 3f
        or eax, 0x04                /* U */
3:      mov dword ptr [boot_pd + ecx * 8], eax
        inc ecx
        cmp ecx, 8
        jb 2b

        mov eax, 0x20               /* CR4.PAE */
        mov cr4, eax
        mov eax, offset boot_pml4
        mov cr3, eax
        mov ecx, 0xc0000080
        rdmsr
        or eax, 0x100               /* EFER.LME; NXE is set from C after CPUID */
        wrmsr
        mov eax, 0x80010033         /* PG | WP | NE | ET | MP | PE */
        mov cr0, eax
        jmp KCODE:long_entry

        .code64
long_entry:
        mov eax, KDATA
        mov ds, eax
        mov es, eax
        mov ss, eax
        xor eax, eax
        mov fs, eax
        mov gs, eax
        lea rsp, [rip + kstack_top]
        call kmain                  /* does not return */
1:      cli
        hlt
        jmp 1b

/* ---- trap stubs ------------------------------------------------------------ */
/* Every stub leaves the same frame: vector, error code (0 if the CPU pushed
 * none), then the CPU's RIP, CS, RFLAGS, RSP, SS.  The table trap_stub_table
 * gives each stub's address to C. */
        .text
        .macro STUB vec, has_error
        .balign 16
trap_stub_\vec:
        .if \has_error == 0
        push 0
        .endif
        push \vec
        jmp trap_common
        .endm

        .irp v, 0,1,2,3,4,5,6,7,9,16,18,19,20,28,31
        STUB \v, 0
        .endr
        .irp v, 8,10,11,12,13,14,17,21,29,30
        STUB \v, 1
        .endr
        .irp v, 15,22,23,24,25,26,27
        STUB \v, 0
        .endr
        STUB 0x80, 0
        STUB 0x81, 0

trap_common:
        push rax
        push rbx
        push rcx
        push rdx
        push rsi
        push rdi
        push rbp
        push r8
        push r9
        push r10
        push r11
        push r12
        push r13
        push r14
        push r15
        cld
        mov rdi, rsp
        call on_trap                /* int on_trap(struct trap_frame *) */
        test eax, eax
        jnz back_to_kernel
        pop r15
        pop r14
        pop r13
        pop r12
        pop r11
        pop r10
        pop r9
        pop r8
        pop rbp
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        pop rax
        add rsp, 16                 /* vector, error code */
        iretq

/* ---- ring 3 round trip ------------------------------------------------------- */
/* void run_user(void): IRETQ to user_entry at CPL 3; returns when the user
 * code executes int $0x81 and on_trap asks to go back to the kernel. */
        .globl run_user
run_user:
        push rbx
        push rbp
        push r12
        push r13
        push r14
        push r15
        mov qword ptr [rip + saved_kernel_rsp], rsp
        push UDATA | 3              /* SS */
        lea rax, [rip + user_stack_top]
        push rax                    /* RSP */
        push 0x002                  /* RFLAGS: IF = 0, IOPL = 0 */
        push UCODE | 3              /* CS */
        lea rax, [rip + user_entry]
        push rax                    /* RIP */
        iretq

back_to_kernel:                     /* CPL 0, on the TSS.RSP0 stack */
        mov eax, KDATA
        mov ss, eax
        mov ds, eax
        mov es, eax
        mov rsp, qword ptr [rip + saved_kernel_rsp]
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret

/* ---- the ring-3 program ------------------------------------------------------ */
/* Each faulting instruction is preceded by r15 = where the kernel's fault
 * handler resumes it (still at CPL 3).  No stack use, no interrupts. */
        .section .user, "awx"
        .globl user_entry, user_stack_top
        .globl u_read_sup, u_write_sup, u_int80, u_int3, u_hlt, u_cli, u_out, u_int81
user_entry:
        lea r15, [rip + 1f]
u_read_sup:
        mov rax, qword ptr [SUPERVISOR_PAGE_VA]     /* #PF, error U|P = 5 */
1:      lea r15, [rip + 1f]
u_write_sup:
        mov qword ptr [SUPERVISOR_PAGE_VA], rax     /* #PF, error U|W|P = 7 */
1:      lea r15, [rip + 1f]
u_int80:
        int 0x80                    /* DPL-0 gate: #GP(0x80*8+2) */
1:      lea r15, [rip + 1f]
u_int3:
        int3                        /* #BP gate is DPL 0 here: #GP(3*8+2) */
1:      lea r15, [rip + 1f]
u_hlt:
        hlt                         /* privileged: #GP(0) */
1:      lea r15, [rip + 1f]
u_cli:
        cli                         /* IOPL 0 < CPL 3: #GP(0) */
1:      lea r15, [rip + 1f]
        mov dx, 0x3ff               /* COM1 scratch register */
        mov al, 0xa5
u_out:
        out dx, al                  /* no I/O bitmap, IOPL 0: #GP(0) */
1:      xor r15d, r15d
        mov eax, 0x600dcafe
u_int81:
        int 0x81                    /* DPL-3 gate: back to CPL 0 on RSP0 */
2:      jmp 2b
        .balign 16
        .skip 4096
user_stack_top:

/* ---- data ------------------------------------------------------------------ */
        .data
        .balign 16
        .globl gdt
gdt:
        .quad 0
        .quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
        .quad 0x00cf92000000ffff    /* 0x10 kernel data */
        .quad 0x00cff2000000ffff    /* 0x18 user data, DPL 3 */
        .quad 0x00affa000000ffff    /* 0x20 user code, 64-bit, DPL 3 */
        .quad 0, 0                  /* 0x28 TSS, filled in by C */
        .quad 0x00cf9a000000ffff    /* 0x38 flat 32-bit code (boot only) */
gdt_end:
        .balign 8
        .word 0, 0, 0
gdt_ptr:
        .word gdt_end - gdt - 1
        .quad gdt

        .globl pvh_start_info, trap_stub_table, saved_kernel_rsp
pvh_start_info: .quad 0
saved_kernel_rsp: .quad 0

        .section .rodata
        .balign 8
/* (vector, stub) pairs, ended by vector -1 */
trap_stub_table:
        .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,0x80,0x81
        .quad \v, trap_stub_\v
        .endr
        .quad -1, 0

        .bss
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096
        .skip 16384
kstack_top:

        .section .note.GNU-stack, "", @progbits
