/*
 * timer: PIC + PIT interrupts while idling in "sti; hlt".
 *
 * Programs the 8254 channel 0 in mode 2 (rate generator) at hz, counts
 * IRQ 0 interrupts until `ticks` have arrived, reporting every 10th, then
 * reads the CMOS clock and the TSC difference (both host dependent: "[var]").
 *
 * Command line: ticks=N (default 50), hz=N (default 100).
 * Exit code: 0.
 */
#include "sdk.h"

#define REPORT_EVERY 10

static volatile uint64_t ticks;

static void timer_irq(struct trap_frame *frame)
{
    (void)frame;
    ticks = ticks + 1;
}

static bool ticks_reached(void *arg)
{
    return ticks >= *(const uint64_t *)arg;
}

int kmain(const struct hvm_start_info *info)
{
    uint64_t target = cmdline_get_u64("ticks", 50);
    uint64_t hz = cmdline_get_u64("hz", 100);
    uint64_t next_report = REPORT_EVERY;
    uint64_t tsc_start, tsc_end;
    struct rtc_time now;
    uint32_t divisor;

    (void)info;
    if (hz == 0 || hz > PIT_INPUT_HZ)
        panic("timer: hz=%lu is out of range", hz);
    irq_set_handler(IRQ_PIT, timer_irq);
    divisor = pit_start_periodic((uint32_t)hz);
    kprintf("timer: PIT channel 0, mode 2, %lu Hz (divisor %u), waiting for %lu ticks\n",
            hz, divisor, target);

    tsc_start = rdtsc();
    pic_unmask(IRQ_PIT);
    while (ticks < target) {
        uint64_t wanted = next_report < target ? next_report : target;

        idle_until(ticks_reached, &wanted);
        /* Report every multiple passed, even if several ticks came at once. */
        while (next_report <= ticks && next_report <= target) {
            kprintf("timer: tick %lu\n", next_report);
            next_report += REPORT_EVERY;
        }
    }
    pic_mask(IRQ_PIT);
    cli();
    tsc_end = rdtsc();

    kprintf("timer: %lu ticks done\n", target);
    rtc_read(&now);
    kprintf("[var] timer: RTC %04u-%02u-%02u %02u:%02u:%02u\n", now.year, now.month,
            now.day, now.hour, now.minute, now.second);
    kprintf("[var] timer: %lu TSC cycles for %lu ticks\n", tsc_end - tsc_start, target);
    return GUEST_EXIT_OK;
}
