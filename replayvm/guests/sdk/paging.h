/*
 * 4-level paging helpers for guests that build their own address spaces
 * (Intel SDM vol. 3 §4.5, "4-Level Paging").  Page-table pages come from a
 * static pool; all of them lie in the identity-mapped low memory, so a
 * table's physical address is also its virtual address.
 */
#ifndef SDK_PAGING_H
#define SDK_PAGING_H

#include <stdint.h>

#define PAGE_SIZE 4096ul
#define LARGE_PAGE_SIZE (2ul << 20)

#define PTE_P (1ul << 0)  /* present */
#define PTE_W (1ul << 1)  /* writable */
#define PTE_U (1ul << 2)  /* user */
#define PTE_A (1ul << 5)  /* accessed */
#define PTE_D (1ul << 6)  /* dirty */
#define PTE_PS (1ul << 7) /* 2 MiB page, in a PD entry */
#define PTE_ADDR_MASK 0x000ffffffffff000ul

/* The boot page tables (start.S): first 4 GiB identity mapped, 2 MiB pages. */
extern uint64_t boot_pml4[512];

/* A zeroed 4 KiB page from the pool (panics when the pool is exhausted). */
void *page_alloc(void);

/* A new, empty PML4; returns its physical address (the CR3 value). */
uint64_t paging_new_root(void);
/* Identity-map [0, size) with 2 MiB pages, writable. */
void paging_identity_map(uint64_t root, uint64_t size);
/* Map one 4 KiB page; flags are PTE_* bits (PTE_P not implied). */
void paging_map_4k(uint64_t root, uint64_t virt, uint64_t phys, uint64_t flags);
/* The 4 KiB PTE for virt (creating the tables above it), to edit directly. */
uint64_t *paging_pte(uint64_t root, uint64_t virt);

#endif
