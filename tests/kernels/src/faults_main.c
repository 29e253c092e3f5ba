/*
 * faults -- the checks (see faults_entry.S for entry, stubs and ring 3).
 *
 * Freestanding C, no headers.  Each check provokes one event, the trap
 * handler logs it (vector, error code, CR2, the pushed RIP/CS/RSP/SS and
 * where the CPU put the frame) and resumes the interrupted code at the
 * address held in R15 (faults) or right after the instruction (traps:
 * int3, int $0x80).  One line per check; exit code 0 if all passed.
 */

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define COM1 0x3f8
#define KCODE 0x08
#define UDATA 0x18
#define UCODE 0x20
#define TSS_SEL 0x28

/* 4 KiB test pages at 1 GiB (PDPT[1] -> test_pd -> test_pt). */
#define RO_PAGE_VA 0x40000000UL         /* present, read-only, supervisor */
#define ABSENT_PAGE_VA 0x40001000UL     /* not present */
#define NX_PAGE_VA 0x40002000UL         /* present, writable, no-execute */
#define SUPERVISOR_PAGE_VA 0x40003000UL /* present, writable, supervisor */
#define NONCANONICAL_VA 0x0000800000000000UL

#define PTE_P 0x1UL
#define PTE_W 0x2UL
#define PTE_U 0x4UL
#define PTE_NX (1UL << 63)

struct trap_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;
};

struct event {
    u64 vector, error, cr2, rip, cs, rsp, ss, frame;
};

struct __attribute__((packed)) tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};

struct __attribute__((packed)) idt_gate {
    u16 offset_lo, selector;
    u8 ist, type_attr;
    u16 offset_mid;
    u32 offset_hi, zero;
};

extern u64 gdt[];
extern u64 pvh_start_info;
extern const u64 trap_stub_table[];
extern u64 boot_pml4[], boot_pdpt[];
extern void run_user(void);
extern char user_stack_top[];
extern char u_read_sup[], u_write_sup[], u_int80[], u_int3[], u_hlt[], u_cli[], u_out[], u_int81[];

static struct tss64 tss __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static u64 test_pd[512] __attribute__((aligned(4096)));
static u64 test_pt[512] __attribute__((aligned(4096)));
static u8 ro_frame[4096] __attribute__((aligned(4096)));
static u8 nx_frame[4096] __attribute__((aligned(4096)));
static u8 sup_frame[4096] __attribute__((aligned(4096)));
static u8 df_stack[4096] __attribute__((aligned(16)));
static u8 pf_stack[4096] __attribute__((aligned(16)));
static u8 ring0_stack[4096] __attribute__((aligned(16)));

#define MAX_EVENTS 16
static volatile struct event events[MAX_EVENTS];
static volatile u32 nevents;
static volatile u64 user_rax;
static u32 failures;

/* ---- port I/O and the console ------------------------------------------------ */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void con_init(void)
{
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x03);               /* 38400 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);               /* 8N1 */
    outb(COM1 + 2, 0x00);
    outb(COM1 + 4, 0x03);
}

static void con_putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (u8)c);
}

static void con_puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            con_putc('\r');
        con_putc(*s);
    }
}

static void con_hex(u64 v)
{
    char buf[19];
    int n = 0;
    buf[n++] = '0';
    buf[n++] = 'x';
    int shift = 60;
    while (shift > 0 && !((v >> shift) & 0xf))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
    buf[n] = 0;
    con_puts(buf);
}

static void con_dec(u64 v)
{
    char buf[21];
    int n = 20;
    buf[n] = 0;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    con_puts(buf + n);
}

static void __attribute__((noreturn)) power_off(u8 code)
{
    outb(0xf4, code);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ---- CPU state -------------------------------------------------------------------- */
static inline u64 read_cr2(void) { u64 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u64 read_cr0(void) { u64 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline u64 read_cr3(void) { u64 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }

static u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}

static void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* ---- the trap handler ------------------------------------------------------------- */
/* Returns 1 to leave user mode for good (int $0x81), else 0 (IRETQ). */
int on_trap(struct trap_frame *f)
{
    u64 cr2 = f->vector == 14 ? read_cr2() : 0;
    if (nevents < MAX_EVENTS) {
        volatile struct event *e = &events[nevents];
        e->vector = f->vector;
        e->error = f->error;
        e->cr2 = cr2;
        e->rip = f->rip;
        e->cs = f->cs;
        e->rsp = f->rsp;
        e->ss = f->ss;
        e->frame = (u64)&f->rip;
    }
    nevents++;
    if (f->vector == 0x81) {
        user_rax = f->rax;
        return 1;
    }
    if (f->vector == 3 || f->vector == 0x80)
        return 0;                       /* traps resume after the instruction */
    if (f->r15) {
        f->rip = f->r15;
        return 0;
    }
    con_puts("faults: unexpected exception ");
    con_dec(f->vector);
    con_puts(" error ");
    con_hex(f->error);
    con_puts(" at rip ");
    con_hex(f->rip);
    con_puts("\n");
    power_off(0x7f);
}

/* ---- set-up ------------------------------------------------------------------------- */
static void set_gate(int vec, u64 handler, u8 type_attr, u8 ist)
{
    idt[vec].offset_lo = (u16)handler;
    idt[vec].selector = KCODE;
    idt[vec].ist = ist;
    idt[vec].type_attr = type_attr;
    idt[vec].offset_mid = (u16)(handler >> 16);
    idt[vec].offset_hi = (u32)(handler >> 32);
    idt[vec].zero = 0;
}

static void tables_init(void)
{
    struct __attribute__((packed)) { u16 limit; u64 base; } idtr;

    for (const u64 *p = trap_stub_table; p[0] != (u64)-1; p += 2) {
        int vec = (int)p[0];
        u8 ist = vec == 8 ? 1 : vec == 14 ? 2 : 0;
        u8 type_attr = vec == 0x81 ? 0xee : 0x8e;   /* P, DPL 3 or 0, interrupt gate */
        set_gate(vec, p[1], type_attr, ist);
    }
    idtr.limit = sizeof(idt) - 1;
    idtr.base = (u64)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));

    tss.rsp[0] = (u64)(ring0_stack + sizeof(ring0_stack));
    tss.ist[0] = (u64)(df_stack + sizeof(df_stack));    /* IST1: #DF */
    tss.ist[1] = (u64)(pf_stack + sizeof(pf_stack));    /* IST2: #PF */
    tss.iomap_base = sizeof(tss);                       /* no I/O bitmap */
    u64 base = (u64)&tss, limit = sizeof(tss) - 1;
    gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89UL << 40) |
             ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    gdt[6] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"((u16)TSS_SEL));
}

static int nx_supported;

static void paging_init(void)
{
    u32 a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000001) {
        cpuid(0x80000001, &a, &b, &c, &d);
        nx_supported = (d >> 20) & 1;
    }
    if (nx_supported)
        wrmsr(0xc0000080, rdmsr(0xc0000080) | (1UL << 11));    /* EFER.NXE */

    for (int i = 0; i < 4096; i++)
        nx_frame[i] = 0xcc;
    nx_frame[0] = 0x41;                 /* jmp *%r15: if NX were ignored, */
    nx_frame[1] = 0xff;                 /* execution goes straight back   */
    nx_frame[2] = 0xe7;
    ro_frame[8] = 0x5a;

    test_pt[0] = (u64)ro_frame | PTE_P;
    test_pt[1] = 0;
    test_pt[2] = (u64)nx_frame | PTE_P | PTE_W | (nx_supported ? PTE_NX : 0);
    test_pt[3] = (u64)sup_frame | PTE_P | PTE_W;
    test_pd[0] = (u64)test_pt | PTE_P | PTE_W | PTE_U;
    boot_pdpt[1] = (u64)test_pd | PTE_P | PTE_W | PTE_U;
    write_cr3(read_cr3());
}

/* ---- checking ----------------------------------------------------------------------- */
enum { ANY_STACK, ON_IST1, ON_IST2, ON_RSP0 };
#define ANY ((u64)-1)

static u64 frame_slot(const u8 *stack, u64 size)
{
    /* RSP is 16-aligned, then SS, RSP, RFLAGS, CS, RIP: RIP sits 40 below the top */
    return (u64)(stack + size) - 40;
}

/* Check events[idx] and print one line. */
static void check(const char *name, u32 idx, u64 vector, u64 error, u64 cr2, u64 rip, u64 cs, int stack)
{
    int ok = 1;
    con_puts(name);
    con_puts(": ");
    if (nevents <= idx) {
        con_puts("no exception -> FAIL\n");
        failures++;
        return;
    }
    volatile struct event *e = &events[idx];
    con_puts("vector ");
    con_dec(e->vector);
    ok &= e->vector == vector;
    if (error != ANY) {
        con_puts(" error ");
        con_hex(e->error);
        ok &= e->error == error;
    }
    if (cr2 != ANY) {
        con_puts(e->cr2 == cr2 ? " cr2 ok" : " cr2 BAD");
        ok &= e->cr2 == cr2;
    }
    if (rip != ANY) {
        con_puts(e->rip == rip ? " rip ok" : " rip BAD");
        ok &= e->rip == rip;
    }
    if (cs != ANY) {
        con_puts(" cs ");
        con_hex(e->cs & 0xffff);
        ok &= (e->cs & 0xffff) == cs;
    }
    if (stack == ON_IST1) {
        int on = e->frame == frame_slot(df_stack, sizeof(df_stack));
        con_puts(on ? " on ist1" : " NOT on ist1");
        ok &= on;
    } else if (stack == ON_IST2) {
        int on = e->frame == frame_slot(pf_stack, sizeof(pf_stack));
        con_puts(on ? " on ist2" : " NOT on ist2");
        ok &= on;
    } else if (stack == ON_RSP0) {
        int on = e->frame == frame_slot(ring0_stack, sizeof(ring0_stack));
        con_puts(on ? " on rsp0" : " NOT on rsp0");
        ok &= on;
    }
    con_puts(ok ? " -> pass\n" : " -> FAIL\n");
    if (!ok)
        failures++;
}

static void expect_count(const char *what, u32 want)
{
    if (nevents != want) {
        con_puts(what);
        con_puts(": ");
        con_dec(nevents);
        con_puts(" events instead of ");
        con_dec(want);
        con_puts(" -> FAIL\n");
        failures++;
    }
}

/* ---- the provocations (R15 = resume address, %0 = the faulting instruction) ---- */
static u64 do_read(u64 va)
{
    u64 at;
    __asm__ volatile("lea 2f(%%rip), %0\n\t"
                     "lea 1f(%%rip), %%r15\n"
                     "2:\tmovq (%1), %%rax\n"
                     "1:\txor %%r15d, %%r15d"
                     : "=&r"(at) : "r"(va) : "rax", "r15", "memory");
    return at;
}

static u64 do_write(u64 va)
{
    u64 at;
    __asm__ volatile("lea 2f(%%rip), %0\n\t"
                     "lea 1f(%%rip), %%r15\n"
                     "2:\tmovq $0x1234, (%1)\n"
                     "1:\txor %%r15d, %%r15d"
                     : "=&r"(at) : "r"(va) : "r15", "memory");
    return at;
}

static void do_jump(u64 va)
{
    __asm__ volatile("lea 1f(%%rip), %%r15\n\t"
                     "jmp *%0\n"
                     "1:\txor %%r15d, %%r15d"
                     : : "r"(va) : "r15", "memory");
}

static u64 do_ud2(void)
{
    u64 at;
    __asm__ volatile("lea 2f(%%rip), %0\n\t"
                     "lea 1f(%%rip), %%r15\n"
                     "2:\tud2\n"
                     "1:\txor %%r15d, %%r15d"
                     : "=&r"(at) : : "r15", "memory");
    return at;
}

static u64 do_div0(void)
{
    u64 at;
    __asm__ volatile("lea 2f(%%rip), %0\n\t"
                     "lea 1f(%%rip), %%r15\n\t"
                     "mov $1, %%eax\n\t"
                     "xor %%edx, %%edx\n\t"
                     "xor %%ecx, %%ecx\n"
                     "2:\tdivl %%ecx\n"
                     "1:\txor %%r15d, %%r15d"
                     : "=&r"(at) : : "rax", "rcx", "rdx", "r15", "memory");
    return at;
}

static u64 do_int3(void)
{
    u64 after;
    __asm__ volatile("xor %%r15d, %%r15d\n\t"
                     "lea 1f(%%rip), %0\n\t"
                     "int3\n"
                     "1:"
                     : "=&r"(after) : : "r15", "memory");
    return after;
}

static u64 do_int80(void)
{
    u64 after;
    __asm__ volatile("xor %%r15d, %%r15d\n\t"
                     "lea 1f(%%rip), %0\n\t"
                     "int $0x80\n"
                     "1:"
                     : "=&r"(after) : : "r15", "memory");
    return after;
}

/* ---- main ------------------------------------------------------------------------- */
void kmain(void)
{
    u64 at;

    con_init();
    con_puts("faults: ELF64 PVH kernel, own 4-level page tables, IDT, TSS with IST1/IST2\n");
    tables_init();
    paging_init();
    con_puts("faults: cr0.wp=");
    con_dec((read_cr0() >> 16) & 1);
    con_puts(" nx=");
    con_dec(nx_supported);
    con_puts("\n");

    nevents = 0;
    at = do_int3();
    check("#BP int3 returns after the instruction", 0, 3, ANY, ANY, at, KCODE, ANY_STACK);
    expect_count("#BP", 1);

    nevents = 0;
    at = do_ud2();
    check("#UD ud2", 0, 6, ANY, ANY, at, KCODE, ANY_STACK);
    expect_count("#UD", 1);

    nevents = 0;
    at = do_div0();
    check("#DE divide by zero", 0, 0, ANY, ANY, at, KCODE, ANY_STACK);
    expect_count("#DE", 1);

    nevents = 0;
    at = do_read(ABSENT_PAGE_VA + 0x10);
    check("#PF read of a not-present page", 0, 14, 0x0, ABSENT_PAGE_VA + 0x10, at, KCODE, ON_IST2);
    expect_count("#PF read", 1);

    nevents = 0;
    at = do_write(ABSENT_PAGE_VA + 0x20);
    check("#PF write to a not-present page", 0, 14, 0x2, ABSENT_PAGE_VA + 0x20, at, KCODE, ON_IST2);
    expect_count("#PF write", 1);

    nevents = 0;
    u64 before = *(volatile u64 *)(RO_PAGE_VA + 8);
    at = do_write(RO_PAGE_VA + 8);
    check("#PF write to a read-only page with cr0.wp=1", 0, 14, 0x3, RO_PAGE_VA + 8, at, KCODE, ON_IST2);
    expect_count("#PF read-only", 1);
    con_puts("read-only page unchanged: ");
    if (*(volatile u64 *)(RO_PAGE_VA + 8) == before && before == 0x5a) {
        con_puts("yes\n");
    } else {
        con_puts("NO\n");
        failures++;
    }

    if (nx_supported) {
        nevents = 0;
        do_jump(NX_PAGE_VA);
        check("#PF instruction fetch from a no-execute page", 0, 14, 0x11, NX_PAGE_VA, NX_PAGE_VA, KCODE, ON_IST2);
        expect_count("#PF nx", 1);
    } else {
        con_puts("#PF instruction fetch from a no-execute page: skipped, no NX\n");
    }

    nevents = 0;
    at = do_read(NONCANONICAL_VA);
    check("#GP read of a non-canonical address", 0, 13, 0x0, ANY, at, KCODE, ANY_STACK);
    expect_count("#GP", 1);

    nevents = 0;
    at = do_int80();
    check("int $0x80 to a DPL-0 gate from ring 0", 0, 0x80, ANY, ANY, at, KCODE, ANY_STACK);
    expect_count("int $0x80", 1);

    /* #DF: #DE whose gate is not present -> #NP (contributory twice). */
    nevents = 0;
    idt[0].type_attr &= 0x7f;
    do_div0();
    idt[0].type_attr |= 0x80;
    check("#DF from #DE through a not-present gate", 0, 8, 0x0, ANY, ANY, KCODE, ON_IST1);
    expect_count("#DF", 1);

    /* Ring 3: IRETQ there, fault a few times, come back with int $0x81. */
    outb(COM1 + 7, 0x5a);
    nevents = 0;
    user_rax = 0;
    run_user();
    u64 ursp = (u64)user_stack_top;
    check("ring 3 read of a supervisor page", 0, 14, 0x5, SUPERVISOR_PAGE_VA, (u64)u_read_sup, UCODE | 3, ON_IST2);
    check("ring 3 write to a supervisor page", 1, 14, 0x7, SUPERVISOR_PAGE_VA, (u64)u_write_sup, UCODE | 3, ON_IST2);
    check("ring 3 int $0x80 to a DPL-0 gate", 2, 13, 0x80 * 8 + 2, ANY, (u64)u_int80, UCODE | 3, ON_RSP0);
    check("ring 3 int3 to a DPL-0 gate", 3, 13, 3 * 8 + 2, ANY, (u64)u_int3, UCODE | 3, ON_RSP0);
    check("ring 3 hlt", 4, 13, 0x0, ANY, (u64)u_hlt, UCODE | 3, ON_RSP0);
    check("ring 3 cli with iopl 0", 5, 13, 0x0, ANY, (u64)u_cli, UCODE | 3, ON_RSP0);
    check("ring 3 out without i/o permission", 6, 13, 0x0, ANY, (u64)u_out, UCODE | 3, ON_RSP0);
    check("ring 3 int $0x81 to a DPL-3 gate", 7, 0x81, ANY, ANY, (u64)u_int81 + 2, UCODE | 3, ON_RSP0);
    expect_count("ring 3", 8);
    con_puts("ring 3 frames: ");
    int frames_ok = 1;
    for (u32 i = 0; i < 8 && i < nevents; i++)
        frames_ok &= events[i].rsp == ursp && (events[i].ss & 0xffff) == (UDATA | 3);
    con_puts(frames_ok ? "user rsp and ss ok" : "user rsp or ss BAD");
    con_puts(", rax from ring 3 ");
    con_hex(user_rax);
    con_puts(", port 0x3ff ");
    u8 scratch = inb(COM1 + 7);
    con_hex(scratch);
    con_puts("\n");
    if (!frames_ok || user_rax != 0x600dcafe || scratch != 0x5a)
        failures++;

    con_puts("faults: ");
    con_dec(failures);
    con_puts(failures ? " check(s) FAILED, exit code 1\n" : " failures, exit code 0\n");
    power_off(failures ? 1 : 0);
}
