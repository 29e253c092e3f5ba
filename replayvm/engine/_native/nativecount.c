/*
 * Exact instruction counting for ReplayVM at native speed (issue 9).
 *
 * Unicorn's count mode (emu_start(count=N)) calls a C callback before every
 * instruction. This module registers one UC_HOOK_BLOCK callback instead and
 * reads, for the translation block (TB) about to run, its instruction count
 * from QEMU's own TranslationBlock. With a single block hook Unicorn calls it
 * inline from the generated code, so the callback's return address lies in
 * the TB's host code, and QEMU allocates the TranslationBlock right before
 * that code. The TB found this way is the one executing, so self-modifying
 * code and several address spaces at one virtual address count right: QEMU
 * itself keeps them apart. Where Unicorn's code buffer is writable, each
 * TB's hook call is then rewritten into an inline countdown on its first
 * run (patch_tb, below), and only blocks that need a decision call us.
 *
 * The numbers must be count mode's in every case (a recording made with one
 * engine replays with the other), including count mode's quirks, so TBs keep
 * QEMU's natural extent -- count mode's TBs have it too, and QEMU's precise
 * self-modifying-code path depends on it. Case by case:
 *
 * - A block that would cross the slice end is not entered. The hook leaves
 *   it before its first instruction (icount_decr, the check Unicorn emits at
 *   every TB start) and asks QEMU for the same block again under another
 *   identity (cpu->cflags_next_tb = its instruction count): a variant of the
 *   same extent, translated while our landing UC_HOOK_CODE hook covers it.
 *   That hook stops emulation before the first instruction past the
 *   deadline, as count mode's hook does. Variants stay cached for the next
 *   landing at the same address; normal lookups never find them.
 * - Instructions whose hooks may stop the slice (IN/OUT/INS/OUTS, CPUID,
 *   RDTSC/RDTSCP, SYSCALL...) get a UC_HOOK_CODE hook on the next
 *   instruction the first time a TB holding one in the middle runs; TBs are
 *   then retranslated (a flush), and Unicorn's exit check after that hook
 *   ends the slice right after the instruction, as in count mode.
 * - A block left early by an exception is corrected in the exception hook
 *   (registered before the VMM's own): the faulting instruction is found
 *   from RIP in the TB's search data (QEMU's per-instruction PC table).
 * - A TB abandoned by QEMU's precise self-modifying-code path (a store into
 *   the running TB) shows at the next block: a one-instruction TB we did not
 *   ask for. Count mode counts the store twice (its hook runs again when the
 *   store is re-executed); so do we.
 * - In a hook, in_slice() = instructions before the TB + index of the
 *   current instruction + 1; the current instruction is the later of RIP
 *   (synced by Unicorn for instruction, code and memory hooks) and
 *   cpu->mem_io_pc (set by QEMU for MMIO accesses, where RIP is stale; read
 *   only when the caller says it is an MMIO callback, so never stale).
 * - A TB the hook sees while a stop or exit request is pending does not run
 *   (Unicorn leaves it before its first instruction): it is not counted.
 * - The interrupt window (an interrupt waits for IF=1) is checked here, at
 *   block entry, instead of in a second UC_HOOK_BLOCK hook, which would make
 *   Unicorn call block hooks through a helper and hide the TB from us. So is
 *   a new address space for the debugger's watchpoints (CR0/CR3/CR4/EFER
 *   changed: every write to them ends its TB in QEMU's translator).
 *
 * Structure offsets are found and checked by probes at start-up
 * (replayvm/engine/native.py): nothing here is trusted blindly.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

typedef void uc_engine;
typedef int uc_err;
typedef size_t uc_hook;

typedef uc_err (*uc_hook_add_fn)(uc_engine *, uc_hook *, int, void *, void *, uint64_t, uint64_t, ...);
typedef uc_err (*uc_hook_del_fn)(uc_engine *, uc_hook);
typedef uc_err (*uc_emu_stop_fn)(uc_engine *);
typedef uc_err (*uc_reg_read_fn)(uc_engine *, int, void *);
typedef uc_err (*uc_vmem_read_fn)(uc_engine *, uint64_t, int, void *, size_t);
typedef uc_err (*uc_ctl_fn)(uc_engine *, uint32_t, ...);

typedef struct {
    uint64_t pc;
    uint16_t icount;
    uint16_t size;
} uc_tb;

#define UC_HOOK_INTR (1 << 0)
#define UC_HOOK_CODE (1 << 2)
#define UC_HOOK_BLOCK (1 << 3)
#define UC_HOOK_INSN_INVALID (1 << 14)
#define UC_X86_REG_RIP 41
#define UC_PROT_EXEC 4

/* QEMU 5 TranslationBlock (unicorn 2.1.x: qemu/include/exec/exec-all.h). */
#define TB_PC 0
#define TB_CS_BASE 8
#define TB_FLAGS 16
#define TB_SIZE 20
#define TB_ICOUNT 22
#define TB_CFLAGS 24
#define TB_TC_PTR 32
#define TB_TC_SIZE 40
#define TB_ORIG 48
#define CF_COUNT_MASK 0x7fffu
#define HF_CS64_MASK (1u << 15)
#define IF_MASK (1u << 9)
#define HF_INHIBIT_IRQ_MASK (1u << 3)
#define GETPC_ADJ 2

/* Unicorn's struct hook: begin/end bounds (checked at start-up). */
#define HOOK_BEGIN 24
#define HOOK_END 32
#define PARKED 0xfffffffffffff000ull /* no instruction lives there */

/* Our per-TB state, kept in the TB's orig_tb field, which QEMU sets to NULL
 * for every new TB and reads only for CF_NOCACHE TBs (icount mode). Only
 * MARK_CLEAN TBs take the fast path. The marks are 64-bit patterns no
 * pointer or guest address takes, so the fast path needs no other proof
 * that the header it found from the return address is a TB's. */
#define MARK_CLEAN 0x52564d2d434c4e31ull   /* "RVM-CLN1": natural TB, every stopping instruction covered */
#define MARK_FORCED 0x52564d2d46524331ull  /* "RVM-FRC1": QEMU's one-instruction re-execution TB */
#define MARK_LANDING 0x52564d2d4c4e4431ull /* "RVM-LND1": a landing variant */

enum { REASON_NONE = 0, REASON_LIMIT = 1, REASON_USER = 2, REASON_WINDOW = 3, REASON_SPLIT = 4, REASON_PAGING = 5 };

#define N_PROBE 64
#define MAX_PENDING 64
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define TB_U64(tb, off) (*(uint64_t *)((uint8_t *)(tb) + (off)))
#define TB_U32(tb, off) (*(uint32_t *)((uint8_t *)(tb) + (off)))
#define TB_U16(tb, off) (*(uint16_t *)((uint8_t *)(tb) + (off)))
#define TB_PTR(tb, off) (*(uintptr_t *)((uint8_t *)(tb) + (off)))

/* What every block hook reads and writes, in one cache line of a page of its
 * own: the fast paths touch nothing else of ours. Where this lies matters
 * (placed inside the Python object, some heap offsets ran the compute guest
 * 25 % slower, presumably 4K aliasing with the guest's hot stores), so it is
 * page-aligned, the same in every run.
 *
 * A block is counted in full when it is entered. Instructions counted in the
 * slice = lim - rem; rem is what the fast paths may still count (0 while
 * anything needs the slow path), so they do one subtraction. cur names the
 * running block (its offset from tb_base; 0: none) so that a block left
 * early can be corrected. Patched blocks (see patch_tb) do the same in their
 * own code, addressing rem and cur by HOT_REM and HOT_CUR. */
typedef struct Hot {
    uintptr_t align_mask;
    uintptr_t tb_hdr;
    uint32_t rem;
    uint32_t cur;
    uint64_t lim;
    uintptr_t tb_base;
    volatile int32_t *icount_decr; /* cpu_neg(cpu)->icount_decr.u32 */
    volatile uintptr_t *mem_io_pc;
    void *owner; /* the Counter */
} Hot;

#define HOT_REM 16
#define HOT_CUR 20
_Static_assert(offsetof(Hot, rem) == HOT_REM && offsetof(Hot, cur) == HOT_CUR, "patched code addresses these");
#define REM_MAX 0x7fffffffu

typedef struct {
    PyObject_HEAD
    Hot *hot;
    int land_active;
    uint64_t limit;
    uint32_t land_pos; /* instructions started in the landing variant */

    int redirect_valid;
    uint32_t redirect_count;
    uint64_t redirect_pc;

    uc_engine *uc;
    uc_hook_add_fn hook_add;
    uc_hook_del_fn hook_del;
    uc_emu_stop_fn emu_stop;
    uc_reg_read_fn reg_read;
    uc_vmem_read_fn vmem_read;
    uintptr_t tb_align;
    int ra_lines;
    volatile uint16_t *icount_decr_high;
    uint32_t *cflags_next_tb;
    volatile uint64_t *eflags; /* env->eflags: IF is kept there, not lazily */
    volatile uint32_t *hflags; /* env->hflags: HF_INHIBIT_IRQ_MASK is the STI/MOV SS shadow */
    uintptr_t mem_io_pc_dummy;
    int window_armed;

    /* stop when the address space changes (set_paging_watch) */
    volatile uint64_t *cr;   /* env->cr[5] */
    volatile uint64_t *efer; /* env->efer */
    int paging_armed;
    uint64_t paging_seen[4];

    /* inline counting in the TBs' own code (patch_tb) */
    int patching;
    int32_t env_icount_disp; /* icount_decr's offset from env (CPUX86State) */
    uintptr_t exit_helper;    /* helper_check_exit_request, called after the block hook */
    volatile uint64_t *env_eip; /* where Unicorn's dropped store put the TB's PC */
    uc_ctl_fn ctl;
    uint32_t ctl_tb_flush;

    uc_hook h_block, h_intr, h_invalid, h_land;
    volatile uint64_t *land_begin, *land_end;
    int hooks_added;
    int active;
    int reason;
    int64_t stop_count;

    /* successors of stopping instructions that carry an exit check */
    uint64_t *split_set; /* open addressing, 0 = empty */
    size_t split_cap, split_len;
    uc_hook *split_hooks;
    size_t n_split_hooks, cap_split_hooks;
    uint64_t pending[MAX_PENDING];
    int n_pending;

    /* statistics; st_inexact counts events after which the count may be wrong */
    uint64_t st_slow, st_land, st_split, st_smc, st_scans, st_fallback, st_inexact, st_scan_fail, st_skipped,
        st_window, st_paging, st_variants, st_patched, st_unpatchable;

    /* calibration probe */
    int probe;
    int n_probe;
    struct {
        uint64_t address;
        uint32_t size;
        uintptr_t ra;
    } probes[N_PROBE];
} Counter;

static int64_t sleb128(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    int64_t val = 0;
    int shift = 0;
    uint8_t byte;
    do {
        byte = *p++;
        val |= (int64_t)(byte & 0x7f) << shift;
        shift += 7;
    } while (byte & 0x80);
    if (shift < 64 && (byte & 0x40)) {
        val |= -((int64_t)1 << shift);
    }
    *pp = p;
    return val;
}

/* The TranslationBlock whose host code called us (ra: the return address of
 * the inline hook call near the start of the TB's code), or NULL. */
static uint8_t *tb_of_ra(Counter *s, uintptr_t ra)
{
    uintptr_t c = ra & ~(s->tb_align - 1);
    for (int i = 0; i < s->ra_lines; i++, c -= s->tb_align) {
        uint8_t *tb = (uint8_t *)(c - s->hot->tb_hdr);
        if (TB_PTR(tb, TB_TC_PTR) == c) {
            return tb;
        }
    }
    return NULL;
}

/* The same, for the block hook of the block at address of size bytes. */
static uint8_t *find_tb(Counter *s, uintptr_t ra, uint64_t address, uint32_t size)
{
    uint8_t *tb = tb_of_ra(s, ra);
    return tb != NULL && TB_U64(tb, TB_PC) == address && TB_U16(tb, TB_SIZE) == size ? tb : NULL;
}

/* Index of the instruction starting at linear address lin, or -1. */
static int64_t index_of_pc(const uint8_t *tb, uint64_t lin)
{
    const uint8_t *p = (const uint8_t *)TB_PTR(tb, TB_TC_PTR) + TB_PTR(tb, TB_TC_SIZE);
    uint32_t n = TB_U16(tb, TB_ICOUNT);
    uint64_t pc = TB_U64(tb, TB_PC);
    for (uint32_t i = 0; i < n; i++) {
        pc += (uint64_t)sleb128(&p);
        (void)sleb128(&p); /* cc_op */
        (void)sleb128(&p); /* host end offset */
        if (pc == lin) {
            return i;
        }
    }
    return -1;
}

/* Index of the instruction whose host code holds host_pc (QEMU's
 * cpu_restore_state_from_tb), or -1. */
static int64_t index_of_host(const uint8_t *tb, uintptr_t host_pc)
{
    uintptr_t start = TB_PTR(tb, TB_TC_PTR);
    const uint8_t *p = (const uint8_t *)start + TB_PTR(tb, TB_TC_SIZE);
    uint32_t n = TB_U16(tb, TB_ICOUNT);
    uintptr_t searched = host_pc - GETPC_ADJ;
    uintptr_t h = start;
    if (searched < start || searched >= start + TB_PTR(tb, TB_TC_SIZE)) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        (void)sleb128(&p);
        (void)sleb128(&p);
        h += (uintptr_t)sleb128(&p);
        if (h > searched) {
            return i;
        }
    }
    return -1;
}

/* May a hook for this instruction stop the slice? (IN/OUT/INS/OUTS, CPUID,
 * RDTSC, RDTSCP, SYSCALL, SYSENTER, SYSRET, SYSEXIT.) Over-approximation only
 * costs an exit check. */
static int may_exit(const uint8_t *b, size_t avail, int mode64)
{
    size_t i = 0;
    while (i < avail && i < 15) {
        uint8_t c = b[i];
        if (c == 0x26 || c == 0x2e || c == 0x36 || c == 0x3e || c == 0x64 || c == 0x65 || c == 0x66 || c == 0x67 ||
            c == 0xf0 || c == 0xf2 || c == 0xf3 || (mode64 && (c & 0xf0) == 0x40)) {
            i++;
            continue;
        }
        break;
    }
    if (i >= avail) {
        return 0;
    }
    uint8_t op = b[i];
    if ((op >= 0xe4 && op <= 0xe7) || (op >= 0xec && op <= 0xef) || (op >= 0x6c && op <= 0x6f)) {
        return 1;
    }
    if (op == 0x0f && i + 1 < avail) {
        uint8_t op2 = b[i + 1];
        if (op2 == 0xa2 || op2 == 0x31 || op2 == 0x05 || op2 == 0x07 || op2 == 0x34 || op2 == 0x35) {
            return 1;
        }
        if (op2 == 0x01 && i + 2 < avail && b[i + 2] == 0xf9) {
            return 1;
        }
    }
    return 0;
}

/* -- the set of addresses that carry an exit check --------------------------- */

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int split_has(Counter *s, uint64_t v)
{
    if (s->split_cap == 0) {
        return 0;
    }
    size_t mask = s->split_cap - 1;
    for (size_t i = hash64(v) & mask;; i = (i + 1) & mask) {
        if (s->split_set[i] == v) {
            return 1;
        }
        if (s->split_set[i] == 0) {
            return 0;
        }
    }
}

static int split_insert(Counter *s, uint64_t v)
{
    if ((s->split_len + 1) * 2 > s->split_cap) {
        size_t cap = s->split_cap ? s->split_cap * 2 : 64;
        uint64_t *set = PyMem_RawCalloc(cap, sizeof(uint64_t));
        if (set == NULL) {
            return -1;
        }
        for (size_t k = 0; k < s->split_cap; k++) {
            uint64_t w = s->split_set[k];
            if (w != 0) {
                for (size_t i = hash64(w) & (cap - 1);; i = (i + 1) & (cap - 1)) {
                    if (set[i] == 0) {
                        set[i] = w;
                        break;
                    }
                }
            }
        }
        PyMem_RawFree(s->split_set);
        s->split_set = set;
        s->split_cap = cap;
    }
    size_t mask = s->split_cap - 1;
    for (size_t i = hash64(v) & mask;; i = (i + 1) & mask) {
        if (s->split_set[i] == v) {
            return 0;
        }
        if (s->split_set[i] == 0) {
            s->split_set[i] = v;
            s->split_len++;
            return 0;
        }
    }
}

/* First execution of a natural TB: does every stopping instruction that is
 * not its last carry an exit check after it? If not, queue the addresses
 * that need one and return 1. */
static int scan_needs_split(Counter *s, const uint8_t *tb, uint64_t address)
{
    uint32_t n = TB_U16(tb, TB_ICOUNT);
    uint32_t size = TB_U16(tb, TB_SIZE);
    uint8_t stackbuf[512];
    uint8_t *buf = stackbuf;
    int needs = 0;
    s->st_scans++;
    if (n <= 1 || size == 0) {
        return 0;
    }
    if (size > sizeof(stackbuf)) {
        buf = PyMem_RawMalloc(size);
        if (buf == NULL) {
            s->st_scan_fail++;
            s->st_inexact++;
            return 0;
        }
    }
    if (s->vmem_read(s->uc, address, UC_PROT_EXEC, buf, size) != 0) {
        s->st_scan_fail++;
        s->st_inexact++;
        goto out;
    }
    {
        const uint8_t *p = (const uint8_t *)TB_PTR(tb, TB_TC_PTR) + TB_PTR(tb, TB_TC_SIZE);
        uint64_t pc = TB_U64(tb, TB_PC);
        int mode64 = (TB_U32(tb, TB_FLAGS) & HF_CS64_MASK) != 0;
        int stopping = 0;
        for (uint32_t i = 0; i < n; i++) {
            pc += (uint64_t)sleb128(&p);
            (void)sleb128(&p);
            (void)sleb128(&p);
            if (stopping) {
                /* pc follows a stopping instruction (code hooks are bounded
                 * by linear addresses, like TB pcs). */
                if (!split_has(s, pc)) {
                    int seen = 0;
                    for (int k = 0; k < s->n_pending; k++) {
                        seen |= s->pending[k] == pc;
                    }
                    if (!seen && s->n_pending < MAX_PENDING) {
                        s->pending[s->n_pending++] = pc;
                    }
                    needs = 1;
                }
            }
            uint64_t off = pc - address;
            if (off >= size) {
                s->st_scan_fail++;
                s->st_inexact++;
                break;
            }
            stopping = may_exit(buf + off, size - off, mode64);
        }
    }
out:
    if (buf != stackbuf) {
        PyMem_RawFree(buf);
    }
    return needs;
}

static uint64_t read_rip(Counter *s)
{
    uint64_t rip = 0;
    s->reg_read(s->uc, UC_X86_REG_RIP, &rip);
    return rip;
}

/* -- the count ----------------------------------------------------------------- */

static uint64_t counted(const Counter *s)
{
    return s->hot->lim - s->hot->rem;
}

/* Count k more (or fewer) instructions. The end of the fast budget never
 * moves forward here (update_fast moves it). */
static void add_counted(Counter *s, int64_t k)
{
    Hot *h = s->hot;
    if (k < 0) {
        h->lim += (uint64_t)k;
    } else if ((uint64_t)k <= h->rem) {
        h->rem -= (uint32_t)k;
    } else {
        h->lim = h->lim - h->rem + (uint64_t)k;
        h->rem = 0;
    }
}

static void update_fast(Counter *s)
{
    int fast = s->active && !s->probe && !s->redirect_valid && s->stop_count < 0 && !s->window_armed &&
               !s->paging_armed && s->reason == REASON_NONE && !s->land_active;
    uint64_t c = counted(s);
    uint64_t room = fast && s->limit > c ? s->limit - c : 0;
    s->hot->rem = room > REM_MAX ? REM_MAX : (uint32_t)room;
    s->hot->lim = c + s->hot->rem;
}

/* The encoding of tb in Hot.cur: its offset from tb_base (QEMU's code buffer
 * is one mapping of at most 1 GiB), or 0 if it cannot be encoded. */
static uint32_t tb_id(Counter *s, const uint8_t *tb)
{
    if (s->hot->tb_base == 0) {
        s->hot->tb_base = (uintptr_t)tb - 0x80000000u;
    }
    uintptr_t off = (uintptr_t)tb - s->hot->tb_base;
    return off > 0 && off <= 0xffffffffu ? (uint32_t)off : 0;
}

/* The running block, or NULL. */
static uint8_t *cur_tb(const Counter *s)
{
    return s->hot->cur ? (uint8_t *)(s->hot->tb_base + s->hot->cur) : NULL;
}

static int tb_ok(const Counter *s, const uint8_t *tb)
{
    return TB_PTR(tb, TB_TC_PTR) == (uintptr_t)tb + s->hot->tb_hdr;
}

/* What entering the running block counted: all of it, or nothing for a
 * landing variant (its landing hook counts). */
static uint32_t entry_count(const Counter *s, const uint8_t *tb)
{
    return s->land_active ? 0 : TB_U16(tb, TB_ICOUNT);
}

/* Instructions started in the running block, including the current one. In
 * an MMIO callback RIP is stale and cpu->mem_io_pc, the host address of the
 * access (set by QEMU right before the callback), names the instruction. */
static uint64_t started_in_block(Counter *s, const uint8_t *tb, int mmio)
{
    int64_t i = index_of_pc(tb, read_rip(s) + TB_U64(tb, TB_CS_BASE));
    if (mmio) {
        int64_t j = index_of_host(tb, *s->hot->mem_io_pc);
        if (j > i) {
            i = j;
        }
    }
    if (i < 0) {
        return TB_U16(tb, TB_ICOUNT); /* past the block's last instruction (a trap such as int n) */
    }
    return (uint64_t)i + 1;
}

static uint64_t in_slice_now(Counter *s, int mmio)
{
    const uint8_t *tb = cur_tb(s);
    if (tb == NULL) {
        return counted(s);
    }
    if (!tb_ok(s, tb)) {
        s->st_inexact++;
        return counted(s);
    }
    return counted(s) - entry_count(s, tb) + started_in_block(s, tb, mmio);
}

static void stop(Counter *s, int reason)
{
    s->reason = reason;
    update_fast(s);
    s->emu_stop(s->uc);
}

/* Has the address space changed since we last looked (CR0, CR3, CR4, EFER)? */
static int paging_moved(Counter *s)
{
    uint64_t now[4] = {s->cr[0], s->cr[3], s->cr[4], *s->efer};
    if (memcmp(now, s->paging_seen, sizeof(now)) == 0) {
        return 0;
    }
    memcpy(s->paging_seen, now, sizeof(now));
    return 1;
}

static void park_landing(Counter *s)
{
    s->land_active = 0;
    *s->land_begin = PARKED;
    *s->land_end = PARKED;
    update_fast(s);
}

/* The running block ends here after k of its instructions started. */
static void leave(Counter *s, const uint8_t *tb, uint64_t k)
{
    add_counted(s, (int64_t)k - (int64_t)entry_count(s, tb));
    s->hot->cur = 0;
    if (s->land_active) {
        park_landing(s);
    }
}

static void enter(Counter *s, uint8_t *tb, uint32_t counted_now)
{
    uint32_t id = tb_id(s, tb);
    if (id == 0) {
        s->st_inexact++;
    }
    s->hot->cur = id;
    add_counted(s, counted_now);
    update_fast(s);
}

/* -- patching: count inside the TB's own code ------------------------------------
 *
 * With a single block hook Unicorn calls it inline: every TB's code starts
 *
 *     movabs rdi, uc; mov esi, pc; mov edx, size; movabs rcx, hot; call on_block
 *     movabs rdi, uc; xor esi, esi; call helper_check_exit_request
 *
 * preceded by Unicorn's store of the PC for the hook (mov qword [rbp+0x80],
 * pc), and the call costs more than the counting. So the first time a clean
 * TB runs, the store and the hook call are rewritten in place to do what the
 * fast path of on_block does -- QEMU's own icount mode does the same inline
 * (CF_USE_ICOUNT in gen_tb_start), but Unicorn left it out:
 *
 *     movabs rcx, hot; sub dword [rcx+HOT_REM], n; jb slow
 *     cmp dword [rbp+icount_decr], 0; js slow    ; rbp: env; a stop is pending
 *     mov dword [rcx+HOT_CUR], id; jmp body
 *   slow: or edx, -1; call on_block; nop...     ; size -1: "from a patched TB"
 *   check: (the exit check, unchanged)
 *   body: (the first instruction)
 *
 * The fast path skips the exit check too: it has made the same test, and
 * that call cost as much as the hook's. The slow call adds n back, writes
 * the PC that the dropped store wrote (the exit check may leave through
 * cpu_loop_exit, which resumes at env->eip when a hook wrote RIP), and does
 * what on_block does (a TB entered while a stop is pending is not counted;
 * the exit check then leaves it).
 * Only these exact bytes are rewritten (both call encodings of QEMU's x86
 * backend: rel32, or indirect through the TB's constant pool), in a code
 * buffer Unicorn 2.1 maps RWX (checked at start-up); anything else keeps
 * calling the hook. The hook returns to the exit check, past the bytes
 * rewritten. A TB flush (uninstall does one) drops every patched TB. */

#define PATCHED_SLOW 0xffffffffu
#define OP_CALL_REL32 0xe8

static void on_block(uc_engine *uc, uint64_t address, uint32_t size, void *ud);

static int match_movabs(const uint8_t *p, uint8_t reg_opcode, uint64_t value)
{
    uint64_t v;
    memcpy(&v, p + 2, 8);
    return p[0] == 0x48 && p[1] == reg_opcode && v == value;
}

static int match_imm32(const uint8_t *p, uint8_t opcode, uint32_t value)
{
    uint32_t v;
    memcpy(&v, p + 1, 4);
    return p[0] == opcode && v == value;
}

/* The target of the call at p (QEMU's x86 backend: call rel32, or call
 * [rip+disp32] through the TB's constant pool) and its length, or 0. */
static uintptr_t call_at(const uint8_t *p, int *len)
{
    int32_t d;
    uint64_t target;
    if (p[0] == OP_CALL_REL32) {
        memcpy(&d, p + 1, 4);
        *len = 5;
        return (uintptr_t)(p + 5 + d);
    }
    if (p[0] == 0xff && p[1] == 0x15) {
        memcpy(&d, p + 2, 4);
        memcpy(&target, p + 6 + d, 8);
        *len = 6;
        return (uintptr_t)target;
    }
    return 0;
}

/* Where the hook call sequence ending at ra begins (it must be the exact
 * pattern above), or NULL. *call_len: 5 (rel32) or 6 (through the pool). */
static uint8_t *hook_call_start(Counter *s, uint8_t *ra, uint64_t address, uint32_t size, int *call_len)
{
    uint8_t *p;
    if (!(ra[-5] == OP_CALL_REL32 && call_at(ra - 5, call_len) == (uintptr_t)on_block) &&
        !(ra[-6] == 0xff && call_at(ra - 6, call_len) == (uintptr_t)on_block)) {
        return NULL;
    }
    p = ra - *call_len - 10;
    if (!match_movabs(p, 0xb9, (uint64_t)(uintptr_t)s->hot) || !match_imm32(p - 5, 0xba, size)) {
        return NULL;
    }
    p -= 5;
    /* esi/rsi = pc: mov esi, imm32 | mov rsi, simm32 | movabs rsi, imm64 */
    if (address <= 0xffffffffu && match_imm32(p - 5, 0xbe, (uint32_t)address)) {
        p -= 5;
    } else if (address + 0x80000000u <= 0xffffffffu && p[-7] == 0x48 && p[-6] == 0xc7 &&
               match_imm32(p - 5, 0xc6, (uint32_t)address)) {
        p -= 7;
    } else if (match_movabs(p - 10, 0xbe, address)) {
        p -= 10;
    } else {
        return NULL;
    }
    p -= 10;
    return match_movabs(p, 0xbf, (uint64_t)(uintptr_t)s->uc) ? p : NULL;
}

/* Unicorn stores the block's PC into env->eip for the hook just before the
 * hook call: mov qword [rbp+ENV_EIP], simm32. The inline count needs no PC,
 * and that store costs as much as the counting, so it goes too. */
#define ENV_EIP 0x80
static int is_eip_store(const uint8_t *p, const uint8_t *tb)
{
    static const uint8_t op[7] = {0x48, 0xc7, 0x85, ENV_EIP, 0, 0, 0};
    int32_t imm;
    memcpy(&imm, p + 7, 4);
    return memcmp(p, op, sizeof(op)) == 0 && (uint64_t)(int64_t)imm == TB_U64(tb, TB_PC) - TB_U64(tb, TB_CS_BASE);
}

/* Where the exit check right after the hook call (returning to ra) ends:
 * movabs rdi, uc; xor esi, esi; call helper_check_exit_request. The inline
 * count has made the same test (icount_decr < 0), so its fast path jumps
 * past the call. ra itself if the check is not exactly there. */
static uint8_t *exit_check_end(Counter *s, uint8_t *ra)
{
    int len = 0;
    if (s->exit_helper != 0 && match_movabs(ra, 0xbf, (uint64_t)(uintptr_t)s->uc) && ra[10] == 0x33 &&
        ra[11] == 0xf6 && call_at(ra + 12, &len) == s->exit_helper) {
        return ra + 12 + len;
    }
    return ra;
}

/* Rewrite the hook call of tb (returning to ra) as above; 1 if done. */
static int patch_tb(Counter *s, uint8_t *tb, uintptr_t ra, uint32_t n, uint32_t id)
{
    int call_len = 0;
    uint8_t *end = (uint8_t *)ra;
    uint8_t *start;
    uint8_t buf[64];
    if (!s->patching) {
        return 0;
    }
    if (n > 127 || id == 0 ||
        (start = hook_call_start(s, end, TB_U64(tb, TB_PC), TB_U16(tb, TB_SIZE), &call_len)) == NULL ||
        start < (uint8_t *)TB_PTR(tb, TB_TC_PTR)) {
        s->st_unpatchable++;
        return 0;
    }
    if (start - 11 < (uint8_t *)TB_PTR(tb, TB_TC_PTR) || !is_eip_store(start - 11, tb)) {
        s->st_unpatchable++;
        return 0;
    }
    start -= 11;
    size_t len = (size_t)(end - start);
    uint8_t *q = buf;
    uint64_t hot = (uint64_t)(uintptr_t)s->hot;
    *q++ = 0x48; /* movabs rcx, hot */
    *q++ = 0xb9;
    memcpy(q, &hot, 8);
    q += 8;
    *q++ = 0x83; /* sub dword [rcx+HOT_REM], n */
    *q++ = 0x69;
    *q++ = HOT_REM;
    *q++ = (uint8_t)n;
    *q++ = 0x72; /* jb slow */
    uint8_t *jb_disp = q++;
    int32_t disp = s->env_icount_disp; /* cmp dword [rbp+disp], 0 (rbp: TCG's env register) */
    *q++ = 0x83;
    if (disp == (int8_t)disp) {
        *q++ = 0x7d;
        *q++ = (uint8_t)(int8_t)disp;
    } else {
        *q++ = 0xbd;
        memcpy(q, &disp, 4);
        q += 4;
    }
    *q++ = 0;
    *q++ = 0x78; /* js slow: a stop or exit is pending, the TB will not run */
    uint8_t *js_disp = q++;
    *q++ = 0xc7; /* mov dword [rcx+HOT_CUR], id */
    *q++ = 0x41;
    *q++ = HOT_CUR;
    memcpy(q, &id, 4);
    q += 4;
    uint8_t *jmp = q; /* jmp past the exit check (or to it), written below */
    q += 2;
    *jb_disp = (uint8_t)(q - (jb_disp + 1));
    *js_disp = (uint8_t)(q - (js_disp + 1));
    *q++ = 0x83; /* slow: or edx, -1 */
    *q++ = 0xca;
    *q++ = 0xff;
    size_t tail = (size_t)(q - buf) + (size_t)call_len;
    size_t jmp_disp = len + (size_t)(exit_check_end(s, end) - end) - (size_t)(jmp + 2 - buf);
    if (tail > len || len > sizeof(buf) || jmp_disp > 127) {
        s->st_unpatchable++;
        return 0;
    }
    jmp[0] = 0xeb;
    jmp[1] = (uint8_t)jmp_disp;
    /* the original call, moved: rel32 re-aimed, or the same pool slot */
    uint8_t *at = start + (q - buf);
    const uint8_t *orig = end - call_len;
    int32_t d;
    memcpy(&d, orig + call_len - 4, 4);
    int64_t nd = (int64_t)d + (int64_t)(end - (at + call_len));
    if (nd != (int32_t)nd) {
        s->st_unpatchable++;
        return 0;
    }
    d = (int32_t)nd;
    memcpy(q, orig, (size_t)call_len - 4);
    memcpy(q + call_len - 4, &d, 4);
    q += call_len;
    memset(q, 0x90, len - (size_t)(q - buf)); /* nop to the exit check */
    memcpy(start, buf, len);
    s->st_patched++;
    return 1;
}

static __attribute__((noinline)) void on_block_slow(Counter *s, uintptr_t ra, uint64_t address, uint32_t size)
{
    if (s->probe && s->n_probe < N_PROBE) {
        s->probes[s->n_probe].address = address;
        s->probes[s->n_probe].size = size;
        s->probes[s->n_probe].ra = ra;
        s->n_probe++;
    }
    if (!s->active) {
        return;
    }
    if (*s->hot->icount_decr < 0) {
        /* Unicorn leaves this TB before its first instruction (a stop, an
         * exit request): it does not run. */
        s->st_skipped++;
        return;
    }
    s->st_slow++;
    uint8_t *tb = find_tb(s, ra, address, size);
    if (tb == NULL) {
        /* Not called inline: another UC_HOOK_BLOCK hook exists. We cannot
         * see which TB runs, so nothing here is exact any more. */
        s->st_fallback++;
        s->st_inexact++;
        stop(s, REASON_LIMIT);
        return;
    }
    uint32_t n = TB_U16(tb, TB_ICOUNT);
    uint32_t forced = TB_U32(tb, TB_CFLAGS) & CF_COUNT_MASK;
    int ours = s->redirect_valid && s->redirect_pc == address && s->redirect_count == forced;
    if (s->redirect_valid && !ours) {
        s->st_inexact++;
    }
    s->redirect_valid = 0;

    /* The previous block is finished: normally all of it ran. */
    const uint8_t *prev = cur_tb(s);
    if (prev != NULL) {
        if (!tb_ok(s, prev)) {
            s->st_inexact++;
            leave(s, prev, entry_count(s, prev));
        } else {
            uint64_t k = s->land_active ? s->land_pos : TB_U16(prev, TB_ICOUNT);
            if (forced == 1 && !ours) {
                /* QEMU's precise-SMC path left the previous block at the store
                 * now re-executed alone. Count mode counted the store there. */
                s->st_smc++;
                int64_t i = index_of_pc(prev, address);
                if (i >= 0) {
                    k = (uint64_t)i + 1;
                } else {
                    s->st_inexact++;
                }
            }
            leave(s, prev, k);
        }
    }
    if (s->land_active) {
        park_landing(s);
    }
    update_fast(s);
    if (n == 0) {
        s->st_inexact++;
        return;
    }

    if (s->window_armed && (*s->eflags & IF_MASK) && !(*s->hflags & HF_INHIBIT_IRQ_MASK) && s->stop_count < 0) {
        /* An interrupt waits for IF=1: stop before the first block that
         * starts with IF=1 outside an STI/MOV SS shadow, as the vCPU's block
         * hook does in count mode (Vcpu._on_window_block). Every instruction
         * that sets IF ends its TB, so this is where the CPU takes it. */
        s->st_window++;
        s->stop_count = (int64_t)counted(s);
        stop(s, REASON_WINDOW);
        return;
    }
    if (s->paging_armed && s->stop_count < 0 && paging_moved(s)) {
        /* Another address space from this block on: stop before it, so that
         * the debugger walks the page tables again (set_paging_watch). */
        s->st_paging++;
        s->stop_count = (int64_t)counted(s);
        stop(s, REASON_PAGING);
        return;
    }

    uintptr_t mark = TB_PTR(tb, TB_ORIG);
    if (ours) {
        /* The landing variant we asked for: the landing hook counts. */
        if (mark == 0) {
            TB_PTR(tb, TB_ORIG) = MARK_LANDING;
            s->st_variants++;
        }
        *s->land_begin = address;
        *s->land_end = address + size - 1;
        s->land_active = 1;
        s->land_pos = 0;
        enter(s, tb, 0);
        return;
    }
    if (mark == 0) {
        uint32_t id = tb_id(s, tb);
        if (forced != 0 || id == 0) {
            mark = MARK_FORCED;
        } else if (scan_needs_split(s, tb, address)) {
            /* Stopping instructions in the middle without exit checks:
             * add them (outside emulation) and retranslate. */
            s->st_split++;
            stop(s, REASON_SPLIT);
            return;
        } else {
            mark = MARK_CLEAN;
            patch_tb(s, tb, ra, n, id);
        }
        TB_PTR(tb, TB_ORIG) = mark;
    }
    if (counted(s) + n > s->limit) {
        if (counted(s) == s->limit) {
            stop(s, REASON_LIMIT);
            return;
        }
        /* Land inside this block: come back in its landing variant. */
        s->st_land++;
        *s->land_begin = address;
        *s->land_end = address + size - 1;
        *s->cflags_next_tb = n;
        s->redirect_valid = 1;
        s->redirect_pc = address;
        s->redirect_count = n;
        update_fast(s);
        *s->icount_decr_high = 0xffff;
        return;
    }
    enter(s, tb, n);
}

/* From a patched TB whose inline count found rem < n: it subtracted n
 * anyway (rem wrapped around); add it back and go the slow way. */
static __attribute__((noinline)) void on_patched_slow(Hot *h, uintptr_t ra)
{
    Counter *s = (Counter *)h->owner;
    uint8_t *tb = tb_of_ra(s, ra);
    if (tb != NULL && TB_PTR(tb, TB_ORIG) == MARK_CLEAN) {
        /* The store of the PC that patching dropped: if this TB is left
         * before its first instruction (we stop here, or a stop is
         * pending), Unicorn's exit check leaves through cpu_loop_exit,
         * which takes the PC from env->eip, not from the TB. */
        *s->env_eip = TB_U64(tb, TB_PC) - TB_U64(tb, TB_CS_BASE);
        h->rem += TB_U16(tb, TB_ICOUNT);
        on_block_slow(s, ra, TB_U64(tb, TB_PC), TB_U16(tb, TB_SIZE));
        return;
    }
    s->st_fallback++;
    s->st_inexact++;
    stop(s, REASON_LIMIT);
}

/* Called inline from every translation block not patched, before its first
 * instruction. The common case -- a known TB that ends before the deadline --
 * reads one line of the TB header and one of Hot; everything else goes to
 * on_block_slow. A TB whose hook call lies past the first alignment line
 * (or a call not made inline) finds no mark there and goes there too. */
static void on_block(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
    Hot *h = (Hot *)ud;
    uintptr_t ra = (uintptr_t)__builtin_return_address(0);
    uintptr_t c = ra & h->align_mask;
    uint8_t *tb = (uint8_t *)(c - h->tb_hdr);
    (void)uc;
    if (UNLIKELY(size == PATCHED_SLOW)) {
        on_patched_slow(h, ra);
        return;
    }
    if (LIKELY(TB_U64(tb, TB_PC) == address && TB_PTR(tb, TB_ORIG) == MARK_CLEAN && *h->icount_decr >= 0)) {
        uint32_t n = TB_U16(tb, TB_ICOUNT);
        if (LIKELY(n <= h->rem)) {
            h->rem -= n;
            h->cur = (uint32_t)((uintptr_t)tb - h->tb_base);
            return;
        }
    }
    on_block_slow((Counter *)h->owner, ra, address, size);
}

/* Before each instruction of a landing variant: stop before the first one
 * past the deadline (Unicorn checks for exit right after this hook). */
static void on_land(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
    Counter *s = (Counter *)ud;
    (void)uc;
    (void)address;
    (void)size;
    if (!s->land_active || *s->hot->icount_decr < 0) {
        return;
    }
    if (counted(s) + s->land_pos >= s->limit) {
        const uint8_t *tb = cur_tb(s);
        if (tb != NULL) {
            leave(s, tb, s->land_pos);
        } else {
            s->st_inexact++;
            park_landing(s);
        }
        stop(s, REASON_LIMIT);
        return;
    }
    s->land_pos++;
}

/* The hook after a stopping instruction: its exit check is what counts. */
static void on_split(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
    (void)uc;
    (void)address;
    (void)size;
    (void)ud;
}

/* An exception left the running block: keep the instructions that started. */
static void fold_exit(Counter *s)
{
    const uint8_t *tb = cur_tb(s);
    if (!s->active || tb == NULL) {
        return;
    }
    uint64_t k = entry_count(s, tb);
    if (tb_ok(s, tb)) {
        int64_t i = index_of_pc(tb, read_rip(s) + TB_U64(tb, TB_CS_BASE));
        k = i >= 0 ? (uint64_t)i + 1 : TB_U16(tb, TB_ICOUNT);
    } else {
        s->st_inexact++;
    }
    leave(s, tb, k);
}

static void on_intr(uc_engine *uc, uint32_t intno, void *ud)
{
    (void)uc;
    (void)intno;
    fold_exit((Counter *)ud);
}

static int on_invalid(uc_engine *uc, void *ud)
{
    (void)uc;
    fold_exit((Counter *)ud);
    return 0; /* not handled: the VMM's own hook delivers #UD */
}

/* ---------------------------------------------------------------- Python */

static void Counter_dealloc(Counter *s)
{
    /* The owner removes the hooks (uninstall) or closes the engine first; a
     * Counter must outlive its engine's emulation (native.py keeps it on the
     * Uc object). */
    PyMem_RawFree(s->split_set);
    PyMem_RawFree(s->split_hooks);
    free(s->hot);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int Counter_init(Counter *s, PyObject *args, PyObject *kwds)
{
    unsigned long long uc, hook_add, hook_del, emu_stop, reg_read, vmem_read;
    unsigned long long icount_decr, cflags_next_tb, mem_io_pc, eflags, hflags, ctl = 0, env = 0, exit_check = 0;
    unsigned long long cr = 0, efer = 0;
    unsigned int tb_align, tb_hdr, ctl_tb_flush = 0;
    int ra_lines, patching = 0;
    static char *kwlist[] = {"uc",          "hook_add",       "hook_del",  "emu_stop", "reg_read", "vmem_read",
                             "tb_align",    "tb_hdr",         "ra_lines",  "icount_decr", "cflags_next_tb",
                             "mem_io_pc",   "eflags",         "hflags",    "ctl",      "ctl_tb_flush",
                             "patching",    "env",            "exit_check", "cr",       "efer",     NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKKKKKIIiKKKKK|KIpKKKK", kwlist, &uc, &hook_add, &hook_del,
                                     &emu_stop, &reg_read, &vmem_read, &tb_align, &tb_hdr, &ra_lines, &icount_decr,
                                     &cflags_next_tb, &mem_io_pc, &eflags, &hflags, &ctl, &ctl_tb_flush,
                                     &patching, &env, &exit_check, &cr, &efer)) {
        return -1;
    }
    int64_t disp = (int64_t)(icount_decr - env);
    if (patching && (ctl == 0 || ctl_tb_flush == 0 || env == 0 || disp != (int32_t)disp)) {
        PyErr_SetString(PyExc_ValueError, "patching needs uc_ctl (to flush) and env near icount_decr");
        return -1;
    }
    s->env_icount_disp = (int32_t)disp;
    s->env_eip = (volatile uint64_t *)(uintptr_t)(env + ENV_EIP);
    s->exit_helper = (uintptr_t)exit_check;
    if (tb_align == 0 || (tb_align & (tb_align - 1)) != 0 || ra_lines <= 0 || !uc || !icount_decr ||
        !cflags_next_tb || !eflags || !hflags) {
        PyErr_SetString(PyExc_ValueError, "bad native counter layout");
        return -1;
    }
    if (s->hot == NULL) {
        void *page = NULL;
        if (posix_memalign(&page, 4096, 4096) != 0) {
            PyErr_NoMemory();
            return -1;
        }
        memset(page, 0, 4096);
        s->hot = (Hot *)page;
        s->hot->owner = s;
    }
    s->uc = (uc_engine *)(uintptr_t)uc;
    s->hook_add = (uc_hook_add_fn)(uintptr_t)hook_add;
    s->hook_del = (uc_hook_del_fn)(uintptr_t)hook_del;
    s->emu_stop = (uc_emu_stop_fn)(uintptr_t)emu_stop;
    s->reg_read = (uc_reg_read_fn)(uintptr_t)reg_read;
    s->vmem_read = (uc_vmem_read_fn)(uintptr_t)vmem_read;
    s->tb_align = tb_align;
    s->hot->align_mask = ~((uintptr_t)tb_align - 1);
    s->hot->tb_hdr = tb_hdr;
    s->ra_lines = ra_lines;
    s->hot->icount_decr = (volatile int32_t *)(uintptr_t)icount_decr;
    s->icount_decr_high = (volatile uint16_t *)((uintptr_t)icount_decr + 2); /* little endian */
    s->cflags_next_tb = (uint32_t *)(uintptr_t)cflags_next_tb;
    s->hot->mem_io_pc = mem_io_pc ? (volatile uintptr_t *)(uintptr_t)mem_io_pc : &s->mem_io_pc_dummy;
    s->hot->mem_io_pc = s->hot->mem_io_pc;
    s->hot->icount_decr = s->hot->icount_decr;
    s->eflags = (volatile uint64_t *)(uintptr_t)eflags;
    s->hflags = (volatile uint32_t *)(uintptr_t)hflags;
    s->cr = (volatile uint64_t *)(uintptr_t)cr;
    s->efer = (volatile uint64_t *)(uintptr_t)efer;
    s->stop_count = -1;
    s->ctl = (uc_ctl_fn)(uintptr_t)ctl;
    s->ctl_tb_flush = ctl_tb_flush;
    s->patching = patching;
    return 0;
}

static PyObject *Counter_install(Counter *s, PyObject *Py_UNUSED(ignored))
{
    if (s->hooks_added) {
        Py_RETURN_NONE;
    }
    /* Exception hooks first: they must see RIP before the VMM's hooks
     * deliver the exception and move it. */
    if (s->hook_add(s->uc, &s->h_intr, UC_HOOK_INTR, (void *)on_intr, s, 1, 0) != 0 ||
        s->hook_add(s->uc, &s->h_invalid, UC_HOOK_INSN_INVALID, (void *)on_invalid, s, 1, 0) != 0 ||
        s->hook_add(s->uc, &s->h_block, UC_HOOK_BLOCK, (void *)on_block, s->hot, 1, 0) != 0 ||
        s->hook_add(s->uc, &s->h_land, UC_HOOK_CODE, (void *)on_land, s, PARKED, PARKED) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "Unicorn refused the native counter's hooks");
        return NULL;
    }
    s->hooks_added = 1;
    s->land_begin = (volatile uint64_t *)((uint8_t *)s->h_land + HOOK_BEGIN);
    s->land_end = (volatile uint64_t *)((uint8_t *)s->h_land + HOOK_END);
    if (*s->land_begin != PARKED || *s->land_end != PARKED) {
        PyErr_SetString(PyExc_RuntimeError, "Unicorn's hook structure is not laid out as expected");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Counter_uninstall(Counter *s, PyObject *Py_UNUSED(ignored))
{
    if (s->hooks_added) {
        s->hook_del(s->uc, s->h_block);
        s->hook_del(s->uc, s->h_intr);
        s->hook_del(s->uc, s->h_invalid);
        s->hook_del(s->uc, s->h_land);
        for (size_t i = 0; i < s->n_split_hooks; i++) {
            s->hook_del(s->uc, s->split_hooks[i]);
        }
        s->n_split_hooks = 0;
        s->split_len = 0;
        if (s->split_set != NULL) {
            memset(s->split_set, 0, s->split_cap * sizeof(uint64_t));
        }
        s->hooks_added = 0;
    }
    if (s->st_patched != 0 && s->ctl != NULL) {
        /* Patched TBs address Hot: none may run once we are gone. */
        s->ctl(s->uc, s->ctl_tb_flush);
    }
    s->active = 0;
    update_fast(s);
    Py_RETURN_NONE;
}

static PyObject *Counter_resume(Counter *s, PyObject *Py_UNUSED(ignored));

static PyObject *Counter_begin(Counter *s, PyObject *arg)
{
    unsigned long long limit = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!s->hooks_added) {
        PyErr_SetString(PyExc_RuntimeError, "native counter not installed");
        return NULL;
    }
    s->limit = limit;
    s->hot->lim = 0;
    s->hot->rem = 0;
    s->hot->cur = 0;
    s->stop_count = -1;
    s->n_pending = 0;
    if (s->paging_armed) {
        (void)paging_moved(s); /* changes between slices are the caller's to see */
    }
    return Counter_resume(s, NULL);
}

/* Before emu_start again inside the same slice (after a split); the end of
 * begin. park_landing sets the fast budget for the new state. */
static PyObject *Counter_resume(Counter *s, PyObject *Py_UNUSED(ignored))
{
    s->reason = REASON_NONE;
    s->redirect_valid = 0;
    s->active = 1;
    park_landing(s);
    Py_RETURN_NONE;
}

/* Add the exit checks a split asked for; the caller flushes the TBs. */
static PyObject *Counter_apply_splits(Counter *s, PyObject *Py_UNUSED(ignored))
{
    int added = 0;
    for (int k = 0; k < s->n_pending; k++) {
        uint64_t v = s->pending[k];
        if (split_has(s, v)) {
            continue;
        }
        if (s->n_split_hooks == s->cap_split_hooks) {
            size_t cap = s->cap_split_hooks ? s->cap_split_hooks * 2 : 64;
            uc_hook *hooks = PyMem_RawRealloc(s->split_hooks, cap * sizeof(uc_hook));
            if (hooks == NULL) {
                return PyErr_NoMemory();
            }
            s->split_hooks = hooks;
            s->cap_split_hooks = cap;
        }
        uc_hook h;
        if (s->hook_add(s->uc, &h, UC_HOOK_CODE, (void *)on_split, s, v, v) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "Unicorn refused an exit-check hook");
            return NULL;
        }
        s->split_hooks[s->n_split_hooks++] = h;
        if (split_insert(s, v) < 0) {
            return PyErr_NoMemory();
        }
        added++;
    }
    s->n_pending = 0;
    return PyLong_FromLong(added);
}

/* End of emu_start: (executed, reason). */
static PyObject *Counter_end(Counter *s, PyObject *Py_UNUSED(ignored))
{
    uint64_t executed = counted(s) + (s->land_active && cur_tb(s) != NULL ? s->land_pos : 0);
    s->active = 0;
    park_landing(s);
    if (s->stop_count >= 0) {
        int reason = s->reason == REASON_WINDOW || s->reason == REASON_PAGING ? s->reason : REASON_USER;
        return Py_BuildValue("(Ki)", (unsigned long long)s->stop_count, reason);
    }
    return Py_BuildValue("(Ki)", (unsigned long long)executed, s->reason);
}

static PyObject *Counter_in_slice(Counter *s, PyObject *args)
{
    int mmio = 0;
    if (!PyArg_ParseTuple(args, "|p", &mmio)) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(in_slice_now(s, mmio));
}

static PyObject *Counter_mark_stop(Counter *s, PyObject *args)
{
    int mmio = 0;
    if (!PyArg_ParseTuple(args, "|p", &mmio)) {
        return NULL;
    }
    if (s->stop_count < 0) {
        s->stop_count = (int64_t)in_slice_now(s, mmio);
        update_fast(s);
    }
    return PyLong_FromLongLong(s->stop_count);
}

/* A hook decided where the slice ends (the debugger's stops). */
static PyObject *Counter_set_stop_count(Counter *s, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "stop count must not be negative");
        return NULL;
    }
    s->stop_count = n;
    update_fast(s);
    Py_RETURN_NONE;
}

static PyObject *Counter_inexact(Counter *s, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(s->st_inexact);
}

static PyObject *Counter_set_window(Counter *s, PyObject *arg)
{
    s->window_armed = PyObject_IsTrue(arg);
    update_fast(s);
    Py_RETURN_NONE;
}

static PyObject *Counter_set_paging_watch(Counter *s, PyObject *arg)
{
    int armed = PyObject_IsTrue(arg);
    if (armed < 0) {
        return NULL;
    }
    if (armed && (s->cr == NULL || s->efer == NULL)) {
        PyErr_SetString(PyExc_ValueError, "the counter was made without the CR and EFER addresses");
        return NULL;
    }
    s->paging_armed = armed;
    if (armed) {
        (void)paging_moved(s);
    }
    update_fast(s);
    Py_RETURN_NONE;
}

static PyObject *Counter_stats(Counter *s, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsnsKsK}", "window_stops", (unsigned long long)s->st_window,
                         "paging_stops", (unsigned long long)s->st_paging,
                         "slow_blocks", (unsigned long long)s->st_slow, "landings", (unsigned long long)s->st_land,
                         "landing_variants", (unsigned long long)s->st_variants, "splits",
                         (unsigned long long)s->st_split, "smc", (unsigned long long)s->st_smc, "scans",
                         (unsigned long long)s->st_scans, "fallbacks", (unsigned long long)s->st_fallback,
                         "inexact", (unsigned long long)s->st_inexact, "scan_failures",
                         (unsigned long long)s->st_scan_fail, "skipped", (unsigned long long)s->st_skipped,
                         "exit_checks", (Py_ssize_t)s->n_split_hooks, "patched", (unsigned long long)s->st_patched,
                         "unpatchable", (unsigned long long)s->st_unpatchable);
}

static PyObject *Counter_set_probe(Counter *s, PyObject *arg)
{
    s->probe = PyObject_IsTrue(arg);
    s->n_probe = 0;
    update_fast(s);
    Py_RETURN_NONE;
}

/* Calibration: for each recorded block hook, (address, size, tb or 0,
 * icount, cflags, (instruction addresses...)) under the current layout. */
static PyObject *Counter_probe_records(Counter *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (int k = 0; k < s->n_probe; k++) {
        uint8_t *tb = find_tb(s, s->probes[k].ra, s->probes[k].address, s->probes[k].size);
        PyObject *item;
        if (tb == NULL) {
            item = Py_BuildValue("(KIKIIO)", (unsigned long long)s->probes[k].address, s->probes[k].size, 0ULL, 0u,
                                 0u, Py_None);
        } else {
            uint32_t n = TB_U16(tb, TB_ICOUNT);
            PyObject *pcs = PyTuple_New(n);
            if (pcs == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            const uint8_t *p = (const uint8_t *)TB_PTR(tb, TB_TC_PTR) + TB_PTR(tb, TB_TC_SIZE);
            uint64_t pc = TB_U64(tb, TB_PC);
            for (uint32_t i = 0; i < n; i++) {
                pc += (uint64_t)sleb128(&p);
                (void)sleb128(&p);
                (void)sleb128(&p);
                PyTuple_SET_ITEM(pcs, i, PyLong_FromUnsignedLongLong(pc));
            }
            item = Py_BuildValue("(KIKIIN)", (unsigned long long)s->probes[k].address, s->probes[k].size,
                                 (unsigned long long)(uintptr_t)tb, n, TB_U32(tb, TB_CFLAGS), pcs);
        }
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    return out;
}

static PyMethodDef Counter_methods[] = {
    {"install", (PyCFunction)Counter_install, METH_NOARGS, "Add the block, code and exception hooks."},
    {"uninstall", (PyCFunction)Counter_uninstall, METH_NOARGS, "Remove the hooks."},
    {"begin", (PyCFunction)Counter_begin, METH_O, "Start a slice of at most N instructions."},
    {"resume", (PyCFunction)Counter_resume, METH_NOARGS, "Before emu_start again in the same slice."},
    {"apply_splits", (PyCFunction)Counter_apply_splits, METH_NOARGS, "Add pending exit checks (then flush)."},
    {"end", (PyCFunction)Counter_end, METH_NOARGS, "After emu_start: (executed, reason)."},
    {"in_slice", (PyCFunction)Counter_in_slice, METH_VARARGS,
     "Instructions started in this slice; in_slice(True) inside an MMIO callback."},
    {"mark_stop", (PyCFunction)Counter_mark_stop, METH_VARARGS,
     "A hook stops the slice after this instruction (mark_stop(True) inside an MMIO callback)."},
    {"set_stop_count", (PyCFunction)Counter_set_stop_count, METH_O, "A hook ends the slice after N instructions."},
    {"inexact", (PyCFunction)Counter_inexact, METH_NOARGS, "Events after which the count may be wrong."},
    {"set_window", (PyCFunction)Counter_set_window, METH_O, "Stop before the first block entered with IF=1."},
    {"set_paging_watch", (PyCFunction)Counter_set_paging_watch, METH_O,
     "Stop before the first block entered in another address space (CR0/CR3/CR4/EFER)."},
    {"stats", (PyCFunction)Counter_stats, METH_NOARGS, "Counters for tests and diagnostics."},
    {"set_probe", (PyCFunction)Counter_set_probe, METH_O, "Record block hooks for calibration."},
    {"probe_records", (PyCFunction)Counter_probe_records, METH_NOARGS, "Recorded blocks (calibration)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CounterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "replayvm.engine._nativecount.Counter",
    .tp_basicsize = sizeof(Counter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Native exact instruction counter for one Unicorn engine.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Counter_init,
    .tp_dealloc = (destructor)Counter_dealloc,
    .tp_methods = Counter_methods,
};

/* A block hook that does nothing: what any block-hook counter costs at
 * least (replayvm bench prints it as the floor beside native). */
static void noop_block(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
    (void)uc;
    (void)address;
    (void)size;
    (void)ud;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_nativecount", "Native exact instruction counting for ReplayVM (issue 9).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__nativecount(void)
{
    if (PyType_Ready(&CounterType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&CounterType);
    if (PyModule_AddObject(m, "Counter", (PyObject *)&CounterType) < 0) {
        Py_DECREF(&CounterType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddObject(m, "NOOP_BLOCK_HOOK", PyLong_FromVoidPtr((void *)noop_block));
    PyModule_AddIntConstant(m, "REASON_NONE", REASON_NONE);
    PyModule_AddIntConstant(m, "REASON_LIMIT", REASON_LIMIT);
    PyModule_AddIntConstant(m, "REASON_USER", REASON_USER);
    PyModule_AddIntConstant(m, "REASON_WINDOW", REASON_WINDOW);
    PyModule_AddIntConstant(m, "REASON_SPLIT", REASON_SPLIT);
    PyModule_AddIntConstant(m, "REASON_PAGING", REASON_PAGING);
    return m;
}
