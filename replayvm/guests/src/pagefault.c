/*
 * pagefault: exceptions that a handler resolves and returns from.
 *
 * Builds its own 4-level page tables -- the first 1 GiB identity mapped
 * with 2 MiB pages, plus a test region of 4 KiB pages at TEST_BASE --
 * and switches CR3 to them.  Then:
 *   - a read of a not-present page: #PF, err 0; the handler sets P and
 *     the read is retried (Intel SDM vol. 3 §6.15, #PF is a fault);
 *   - a write to a read-only page: #PF, err W|P (CR0.WP is set);
 *   - a write to an unmapped page: #PF, err W; demand-zero mapping;
 *   - a divide by zero: #DE; the handler decodes the DIV and skips it;
 *   - ud2: #UD; the handler skips the 2-byte instruction;
 *   - int3: #BP, a trap: the saved RIP is already after the int3.
 *
 * Command line: none.
 * Exit code: 0 if every check passed, 1 otherwise.
 */
#include "sdk.h"

#define TEST_BASE 0x40000000ul /* 1 GiB: above the identity map */
#define PAGE_PRESENT_RW (TEST_BASE + 0 * PAGE_SIZE)
#define PAGE_SWAPPED (TEST_BASE + 1 * PAGE_SIZE)   /* PTE has a frame, P=0 */
#define PAGE_READ_ONLY (TEST_BASE + 2 * PAGE_SIZE)
#define PAGE_UNMAPPED (TEST_BASE + 3 * PAGE_SIZE)  /* PTE is 0 */

#define PATTERN_SWAPPED 0x5eed0001u
#define PATTERN_READ_ONLY 0x5eed0002u
#define DIV_SENTINEL 0xdeadul

static uint64_t root;
static unsigned checks, failures;
/* Written by the handlers, behind the compiler's back: volatile. */
static volatile unsigned pf_count, de_count, ud_count, bp_count;
static volatile uint64_t last_cr2, last_err;
static volatile uint64_t de_rip, ud_rip, bp_rip; /* RIP in the frame each handler saw */

static void check(bool ok, const char *what)
{
    checks++;
    if (!ok)
        failures++;
    kprintf("pagefault: check %u %s: %s\n", checks, ok ? "ok  " : "FAIL", what);
}

static void on_page_fault(struct trap_frame *f)
{
    uint64_t cr2 = read_cr2();
    uint64_t page = cr2 & ~(PAGE_SIZE - 1);
    uint64_t *pte;

    pf_count++;
    last_cr2 = cr2;
    last_err = f->error_code;
    kprintf("pagefault: #PF cr2=0x%lx err=0x%lx (%s, %s)\n", cr2, f->error_code,
            f->error_code & PF_ERR_W ? "write" : "read",
            f->error_code & PF_ERR_P ? "protection" : "not present");
    if (page < TEST_BASE || page > PAGE_UNMAPPED)
        panic("pagefault: unexpected #PF at 0x%lx, rip=0x%lx", cr2, f->rip);

    pte = paging_pte(root, page);
    if (!(f->error_code & PF_ERR_P)) {
        if (!(*pte & PTE_ADDR_MASK))
            *pte = (uint64_t)(uintptr_t)page_alloc(); /* demand zero */
        *pte |= PTE_P | PTE_W;
    } else if (f->error_code & PF_ERR_W) {
        *pte |= PTE_W;
    } else {
        panic("pagefault: #PF on a present page for a read, err=0x%lx", f->error_code);
    }
    invlpg(page);
}

/*
 * Length of a DIV/IDIV (F6/F7 /6, /7) from its encoding (SDM vol. 2 §2.1):
 * legacy prefixes, REX, opcode, ModRM, optional SIB and displacement.
 * Returns 0 for anything else.
 */
static unsigned div_length(const uint8_t *p)
{
    unsigned n = 0, mod, rm, reg;

    while (p[n] == 0x66 || p[n] == 0x67 || p[n] == 0xf2 || p[n] == 0xf3)
        n++;
    if ((p[n] & 0xf0) == 0x40)
        n++;
    if (p[n] != 0xf6 && p[n] != 0xf7)
        return 0;
    n++;
    mod = p[n] >> 6;
    reg = (p[n] >> 3) & 7;
    rm = p[n] & 7;
    n++;
    if (reg != 6 && reg != 7)
        return 0;
    if (mod == 3)
        return n;
    if (rm == 4) { /* SIB */
        if (mod == 0 && (p[n] & 7) == 5)
            n += 4; /* no base: disp32 */
        n++;
    } else if (mod == 0 && rm == 5) {
        n += 4; /* RIP-relative disp32 */
    }
    if (mod == 1)
        n += 1;
    else if (mod == 2)
        n += 4;
    return n;
}

static void on_divide_error(struct trap_frame *f)
{
    unsigned len = div_length((const uint8_t *)f->rip);

    de_count++;
    de_rip = f->rip;
    kprintf("pagefault: #DE, skipping a %u-byte DIV\n", len);
    if (!len)
        panic("pagefault: #DE not on a DIV at 0x%lx", f->rip);
    f->rip += len;
    f->rax = DIV_SENTINEL;
    f->rdx = 0;
}

static void on_invalid_opcode(struct trap_frame *f)
{
    const uint8_t *insn = (const uint8_t *)f->rip;

    ud_count++;
    ud_rip = f->rip;
    kprintf("pagefault: #UD, skipping ud2\n");
    if (insn[0] != 0x0f || insn[1] != 0x0b)
        panic("pagefault: #UD not on ud2 at 0x%lx", f->rip);
    f->rip += 2;
}

static void on_breakpoint(struct trap_frame *f)
{
    bp_count++;
    bp_rip = f->rip;
    kprintf("pagefault: #BP, resuming after the int3\n");
}

static void setup_address_space(volatile uint32_t *swapped_frame,
                                volatile uint32_t *read_only_frame)
{
    root = paging_new_root();
    paging_identity_map(root, 1ul << 30);
    paging_map_4k(root, PAGE_PRESENT_RW, (uint64_t)(uintptr_t)page_alloc(), PTE_P | PTE_W);
    paging_map_4k(root, PAGE_SWAPPED, (uint64_t)(uintptr_t)swapped_frame, 0);
    paging_map_4k(root, PAGE_READ_ONLY, (uint64_t)(uintptr_t)read_only_frame, PTE_P);
    *swapped_frame = PATTERN_SWAPPED;
    *read_only_frame = PATTERN_READ_ONLY;
    write_cr3(root);
}

int kmain(const struct hvm_start_info *info)
{
    volatile uint32_t *swapped_frame = page_alloc();
    volatile uint32_t *read_only_frame = page_alloc();
    volatile uint32_t *p;
    uint64_t rax = 100, rdx = 0, at;

    (void)info;
    trap_set_handler(VEC_PF, on_page_fault);
    trap_set_handler(VEC_DE, on_divide_error);
    trap_set_handler(VEC_UD, on_invalid_opcode);
    trap_set_handler(VEC_BP, on_breakpoint);
    setup_address_space(swapped_frame, read_only_frame);
    kprintf("pagefault: own page tables active, test pages at 0x%lx\n", TEST_BASE);

    p = (volatile uint32_t *)PAGE_PRESENT_RW;
    *p = 0x1234;
    check(*p == 0x1234 && pf_count == 0, "present page: no fault");

    p = (volatile uint32_t *)PAGE_SWAPPED;
    check(*p == PATTERN_SWAPPED && pf_count == 1 && last_cr2 == PAGE_SWAPPED && last_err == 0,
          "read of a not-present page: err 0, retried after mapping");

    p = (volatile uint32_t *)(PAGE_READ_ONLY + 0x20);
    *p = 0xabcd;
    check(read_only_frame[8] == 0xabcd && pf_count == 2 &&
              last_cr2 == PAGE_READ_ONLY + 0x20 && last_err == (PF_ERR_W | PF_ERR_P),
          "write to a read-only page: err W|P, retried after unprotecting");

    p = (volatile uint32_t *)(PAGE_UNMAPPED + 0x30);
    *p = 0x77;
    check(*p == 0x77 && p[1] == 0 && pf_count == 3 && last_cr2 == PAGE_UNMAPPED + 0x30 &&
              last_err == PF_ERR_W,
          "write to an unmapped page: err W, demand-zero page");

    /* DIV RCX is 48 f7 f1: the handler must find 3 bytes. */
    __asm__ volatile("lea 1f(%%rip), %[at]\n1:\tdiv %%rcx"
                     : [at] "=&r"(at), "+a"(rax), "+d"(rdx)
                     : "c"(0ul)
                     : "cc");
    check(rax == DIV_SENTINEL && rdx == 0 && de_count == 1 && de_rip == at,
          "divide by zero: #DE at the DIV, skipped");

    __asm__ volatile("lea 1f(%%rip), %0\n1:\tud2" : "=r"(at));
    check(ud_count == 1 && ud_rip == at, "ud2: #UD at the ud2, skipped");

    __asm__ volatile("lea 1f(%%rip), %0\n\tint3\n1:" : "=r"(at));
    check(bp_count == 1 && bp_rip == at, "int3: #BP is a trap, RIP after the int3");

    write_cr3((uint64_t)(uintptr_t)boot_pml4);
    if (failures) {
        kprintf("pagefault: %u of %u checks failed\n", failures, checks);
        return GUEST_EXIT_FAIL;
    }
    kprintf("pagefault: all %u checks passed\n", checks);
    return GUEST_EXIT_OK;
}
