/* Page tables for guest-built address spaces; see paging.h. */
#include "sdk.h"

#define POOL_PAGES 32
#define TABLE_FLAGS (PTE_P | PTE_W)

static uint8_t pool[POOL_PAGES][PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static unsigned pool_used;

void *page_alloc(void)
{
    void *page;

    if (pool_used == POOL_PAGES)
        panic("paging: page pool of %u pages exhausted", POOL_PAGES);
    page = pool[pool_used++];
    memset(page, 0, PAGE_SIZE);
    return page;
}

uint64_t paging_new_root(void)
{
    return (uint64_t)(uintptr_t)page_alloc();
}

static unsigned index_at(uint64_t virt, unsigned level)
{
    return (unsigned)(virt >> (12 + 9 * level)) & 511;
}

/* The table that entry `index` of `table` points to, allocated if absent. */
static uint64_t *next_table(uint64_t *table, unsigned index)
{
    uint64_t entry = table[index];

    if (!(entry & PTE_P)) {
        entry = (uint64_t)(uintptr_t)page_alloc() | TABLE_FLAGS;
        table[index] = entry;
    } else if (entry & PTE_PS) {
        panic("paging: entry %u is a large page, not a table", index);
    }
    return (uint64_t *)(uintptr_t)(entry & PTE_ADDR_MASK);
}

void paging_identity_map(uint64_t root, uint64_t size)
{
    for (uint64_t addr = 0; addr < size; addr += LARGE_PAGE_SIZE) {
        uint64_t *pdpt = next_table((uint64_t *)(uintptr_t)root, index_at(addr, 3));
        uint64_t *pd = next_table(pdpt, index_at(addr, 2));

        pd[index_at(addr, 1)] = addr | PTE_P | PTE_W | PTE_PS;
    }
}

uint64_t *paging_pte(uint64_t root, uint64_t virt)
{
    uint64_t *table = (uint64_t *)(uintptr_t)root;

    for (unsigned level = 3; level > 0; level--)
        table = next_table(table, index_at(virt, level));
    return &table[index_at(virt, 0)];
}

void paging_map_4k(uint64_t root, uint64_t virt, uint64_t phys, uint64_t flags)
{
    *paging_pte(root, virt) = (phys & PTE_ADDR_MASK) | flags;
    invlpg(virt);
}
