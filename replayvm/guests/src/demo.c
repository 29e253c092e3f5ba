/*
 * demo: a tour of the platform for first-time users.
 *
 * Shows the command line and memory, lets the PIT tick a few times while
 * the CPU idles in HLT, reads the CMOS clock, takes and handles a page
 * fault, computes a short CRC-32, and exits through isa-debug-exit.
 * Lines starting with "[var] " depend on the host (clock, CPU, timing).
 *
 * Command line: ticks=N (default 5).
 * Exit code: 0.
 */
#include "sdk.h"

#define DEMO_HZ 100
#define DEMAND_PAGE 0x40000000ul /* outside the identity-mapped first GiB */
#define CRC_BYTES (64u << 10)

static volatile uint64_t ticks;
static uint64_t root;

static void timer_irq(struct trap_frame *frame)
{
    (void)frame;
    ticks = ticks + 1;
}

static bool ticks_reached(void *arg)
{
    return ticks >= *(const uint64_t *)arg;
}

static void on_page_fault(struct trap_frame *f)
{
    uint64_t cr2 = read_cr2();

    kprintf("demo:   #PF at 0x%lx, error code 0x%lx: mapping a zeroed page there\n", cr2,
            f->error_code);
    if ((cr2 & ~(PAGE_SIZE - 1)) != DEMAND_PAGE)
        panic("demo: unexpected page fault at 0x%lx (rip 0x%lx)", cr2, f->rip);
    paging_map_4k(root, DEMAND_PAGE, (uint64_t)(uintptr_t)page_alloc(), PTE_P | PTE_W);
}

static void show_cpu(void)
{
    struct cpuid_regs r = cpuid(0, 0);
    char vendor[13];

    memcpy(vendor, &r.ebx, 4);
    memcpy(vendor + 4, &r.edx, 4);
    memcpy(vendor + 8, &r.ecx, 4);
    vendor[12] = '\0';
    kprintf("[var] demo: CPU vendor \"%s\", max basic CPUID leaf 0x%x\n", vendor, r.eax);
}

static void tick_tour(uint64_t count)
{
    kprintf("demo: 2. the 8254 PIT ticks at %u Hz on IRQ 0; the CPU waits in hlt\n", DEMO_HZ);
    irq_set_handler(IRQ_PIT, timer_irq);
    pit_start_periodic(DEMO_HZ);
    pic_unmask(IRQ_PIT);
    for (uint64_t want = 1; want <= count; want++) {
        idle_until(ticks_reached, &want);
        kprintf("demo:   tick %lu\n", want);
    }
    pic_mask(IRQ_PIT);
}

static void page_fault_tour(void)
{
    volatile uint32_t *p = (volatile uint32_t *)(DEMAND_PAGE + 0x40);

    kprintf("demo: 4. new page tables, then a write to unmapped 0x%lx\n", (uint64_t)p);
    trap_set_handler(VEC_PF, on_page_fault);
    root = paging_new_root();
    paging_identity_map(root, 1ul << 30);
    write_cr3(root);
    *p = 42; /* faults once; the handler maps the page and the write is retried */
    kprintf("demo:   the write was retried and reads back %u\n", *p);
    write_cr3((uint64_t)(uintptr_t)boot_pml4);
}

static void crc_tour(void)
{
    static uint64_t words[CRC_BYTES / sizeof(uint64_t)];

    xorshift64_fill(words, CRC_BYTES / sizeof(uint64_t), 1);
    kprintf("demo: 5. CRC-32 of %u KiB of xorshift64 data: 0x%08x\n", CRC_BYTES >> 10,
            crc32_update(0, words, CRC_BYTES));
}

int kmain(const struct hvm_start_info *info)
{
    uint64_t tsc_start = rdtsc();
    struct rtc_time now;

    (void)info;
    kprintf("demo: ReplayVM demo guest -- a tour of the rv-pc platform\n");
    kprintf("demo: 1. booted through PVH in 32-bit mode, now in 64-bit long mode\n");
    kprintf("demo:   command line: \"%s\"\n", cmdline());
    kprintf("demo:   memory map: %lu KiB of RAM\n", memmap_ram_bytes() >> 10);
    show_cpu();

    tick_tour(cmdline_get_u64("ticks", 5));

    rtc_read(&now);
    kprintf("demo: 3. the CMOS real-time clock is read once (time is a recorded input)\n");
    kprintf("[var] demo:   RTC %04u-%02u-%02u %02u:%02u:%02u\n", now.year, now.month,
            now.day, now.hour, now.minute, now.second);

    page_fault_tour();
    crc_tour();

    kprintf("[var] demo: %lu TSC cycles since kmain\n", rdtsc() - tsc_start);
    kprintf("demo: 6. done; exiting through isa-debug-exit with code 0\n");
    return GUEST_EXIT_OK;
}
