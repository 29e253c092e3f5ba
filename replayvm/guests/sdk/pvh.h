/*
 * Xen PVH boot ABI, as used by QEMU's and ReplayVM's "-kernel guest.elf".
 *
 * Layout from Xen's public/arch-x86/hvm/start_info.h: the loader enters
 * the kernel's XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected mode, paging
 * off, with EBX = physical address of struct hvm_start_info.  A zero
 * address field means "not present".
 */
#ifndef SDK_PVH_H
#define SDK_PVH_H

#include <stdint.h>

#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u

/* Memory map entry types (start_info.h, same values as E820). */
#define XEN_HVM_MEMMAP_TYPE_RAM 1
#define XEN_HVM_MEMMAP_TYPE_RESERVED 2
#define XEN_HVM_MEMMAP_TYPE_ACPI 3
#define XEN_HVM_MEMMAP_TYPE_NVS 4
#define XEN_HVM_MEMMAP_TYPE_UNUSABLE 5

struct hvm_start_info {
    uint32_t magic;          /* XEN_HVM_START_MAGIC_VALUE */
    uint32_t version;        /* 0, or 1 when the memmap fields are valid */
    uint32_t flags;          /* SIF_xxx */
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;  /* NUL-terminated ASCII */
    uint64_t rsdp_paddr;
    /* version >= 1 */
    uint64_t memmap_paddr;   /* array of struct hvm_memmap_table_entry */
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "start_info layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap layout");

#endif
