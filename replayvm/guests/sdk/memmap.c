/*
 * Physical memory map from hvm_start_info (version >= 1: memmap_paddr,
 * memmap_entries; entries are {addr, size, type}, type 1 = RAM).
 */
#include "sdk.h"

extern char __kernel_end[]; /* linker.ld */

static uint64_t reserve_floor;

unsigned memmap_count(void)
{
    const struct hvm_start_info *info = start_info();

    if (!info || info->version < 1 || !info->memmap_paddr)
        return 0;
    return info->memmap_entries;
}

const struct hvm_memmap_table_entry *memmap_entry(unsigned i)
{
    const struct hvm_memmap_table_entry *table =
        (const struct hvm_memmap_table_entry *)(uintptr_t)start_info()->memmap_paddr;

    return &table[i];
}

uint64_t memmap_ram_bytes(void)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < memmap_count(); i++) {
        if (memmap_entry(i)->type == XEN_HVM_MEMMAP_TYPE_RAM)
            total += memmap_entry(i)->size;
    }
    return total;
}

static uint64_t align_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) & ~(align - 1);
}

/*
 * First fit in RAM entries, above the kernel image and earlier
 * reservations, below 4 GiB (the part start.S identity maps).
 */
void *memmap_reserve(uint64_t size, uint64_t align)
{
    const uint64_t limit = 1ul << 32;

    if (!reserve_floor)
        reserve_floor = (uint64_t)(uintptr_t)__kernel_end;
    for (unsigned i = 0; i < memmap_count(); i++) {
        const struct hvm_memmap_table_entry *e = memmap_entry(i);
        uint64_t end = e->addr + e->size;
        uint64_t start;

        if (e->type != XEN_HVM_MEMMAP_TYPE_RAM)
            continue;
        if (end > limit)
            end = limit;
        start = align_up(e->addr > reserve_floor ? e->addr : reserve_floor, align);
        if (start >= end || end - start < size)
            continue;
        reserve_floor = start + size;
        return (void *)(uintptr_t)start;
    }
    panic("memmap: no %lu KiB of free RAM in the memory map", size >> 10);
}
