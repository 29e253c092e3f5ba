/*
 * buggy: a guest with a real bug, for the bug-report workflow.
 *
 * A tiny order book keeps orders in a linked list, allocated from a fixed
 * pool.  Cancelling an order returns it to the pool and poisons it, but the
 * "last touched" cache still points at it (a use-after-free).  The report at
 * the end follows the stale cache pointer, reads the poisoned `next` link and
 * dereferences a non-canonical address: #GP in order_total(), an unhandled
 * exception, and the SDK panics (exit code 0x7f, process status 255).
 *
 * Command line: orders=N (default 6), cancel=1 (default: cancel the newest
 * order, which the cache still points at: the bug) or cancel=0 (no bug).
 * Exit code: 0 without the bug, 0x7f (panic) with it.
 */
#include "sdk.h"

#define POOL 32
#define POISON 0xdeadbeefdeadbeefULL

struct order {
    struct order *next;
    uint64_t id;
    uint64_t qty;
    uint64_t price;
};

static struct order pool[POOL];
static struct order *free_stack[POOL];
static unsigned free_top;
static struct order *book;
static struct order *last_touched; /* the cache that outlives its order */

static struct order *order_alloc(void)
{
    if (!free_top)
        panic("buggy: order pool exhausted");
    return free_stack[--free_top];
}

static void order_free(struct order *o)
{
    o->next = (struct order *)POISON; /* poison, so a stale use shows */
    o->qty = 0;
    free_stack[free_top++] = o;
}

static void order_add(uint64_t id, uint64_t qty, uint64_t price)
{
    struct order *o = order_alloc();
    o->id = id;
    o->qty = qty;
    o->price = price;
    o->next = book;
    book = o;
    last_touched = o;
}

static void order_cancel(uint64_t id)
{
    struct order **link = &book;
    while (*link && (*link)->id != id)
        link = &(*link)->next;
    if (!*link)
        return;
    struct order *gone = *link;
    *link = gone->next;
    order_free(gone); /* BUG: last_touched may still point at it */
}

/* Sum of qty * price from `start` to the end of its list. */
static uint64_t __attribute__((noinline)) order_total(const struct order *start)
{
    uint64_t total = 0;
    for (const struct order *o = start; o; o = o->next)
        total += o->qty * o->price;
    return total;
}

int kmain(const struct hvm_start_info *info)
{
    (void)info;
    uint64_t orders = cmdline_get_u64("orders", 6);
    uint64_t cancel = cmdline_get_u64("cancel", 1);

    for (int i = POOL - 1; i >= 0; i--)
        free_stack[free_top++] = &pool[i];
    for (uint64_t i = 1; i <= orders && i < POOL; i++)
        order_add(i, i * 10, 100 + i);
    kprintf("buggy: %lu orders, book total %lu\n", orders, order_total(book));
    if (cancel) {
        order_cancel(orders); /* the newest order, the one last_touched caches */
        kprintf("buggy: cancelled order %lu\n", orders);
    }
    kprintf("buggy: total from the last touched order: %lu\n", order_total(last_touched));
    kprintf("buggy: done\n");
    return GUEST_EXIT_OK;
}
