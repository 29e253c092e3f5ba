/*
 * irqbug: a value corrupted by an interrupt handler, noticed much later.
 *
 * The main loop keeps a ledger: it deposits a fixed amount per round and
 * keeps its balance.  The PIT interrupt handler records each tick in a ring
 * of samples that sits right before the balance -- and indexes the ring
 * modulo 9 instead of 8.  On the ninth tick the handler overwrites the
 * balance; the main loop only audits it at the end, long after, and panics.
 * The bug shows as "balance corrupted"; the cause is one store in
 * record_sample() (a watchpoint on `ledger.balance` and reverse-continue
 * find it).
 *
 * Command line: rounds=N (default 5), ticks=T (default 20).
 * Exit code: 0 if the audit passes, 0x7f (panic) when the balance is wrong.
 */
#include "sdk.h"

#define SAMPLES 8
#define DEPOSIT 25

static struct {
    uint64_t samples[SAMPLES]; /* the handler's ring of tick stamps */
    uint64_t balance;          /* the main loop's money, right after it */
    uint64_t deposits;
} ledger;

static volatile uint64_t ticks;

static void __attribute__((noinline)) record_sample(uint64_t tick)
{
    /* BUG: the ring has SAMPLES entries, but the index wraps at SAMPLES + 1. */
    ledger.samples[tick % (SAMPLES + 1)] = tick * 1000;
}

static void timer_irq(struct trap_frame *frame)
{
    (void)frame;
    ticks = ticks + 1;
    record_sample(ticks - 1);
}

static bool ticks_reached(void *arg)
{
    return ticks >= *(const uint64_t *)arg;
}

int kmain(const struct hvm_start_info *info)
{
    uint64_t rounds = cmdline_get_u64("rounds", 5);
    uint64_t wanted = cmdline_get_u64("ticks", 20);

    (void)info;
    irq_set_handler(IRQ_PIT, timer_irq);
    pit_start_periodic(1000);
    pic_unmask(IRQ_PIT);
    kprintf("irqbug: %lu rounds of deposits while the timer ticks\n", rounds);
    for (uint64_t round = 0; round < rounds; round++) {
        ledger.balance += DEPOSIT;
        ledger.deposits++;
        uint64_t until = ticks + 1;
        idle_until(ticks_reached, &until);
    }
    idle_until(ticks_reached, &wanted);
    pic_mask(IRQ_PIT);
    cli();
    kprintf("irqbug: %lu deposits, %lu ticks\n", ledger.deposits, ticks);
    if (ledger.balance != ledger.deposits * DEPOSIT)
        panic("irqbug: balance corrupted: %lu, expected %lu", ledger.balance, ledger.deposits * DEPOSIT);
    kprintf("irqbug: audit passed, balance %lu\n", ledger.balance);
    return GUEST_EXIT_OK;
}
