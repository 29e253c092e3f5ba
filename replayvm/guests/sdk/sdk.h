/*
 * ReplayVM guest SDK: everything a guest kernel includes.
 *
 * A guest defines kmain(); start.S enters long mode, sdk_main() sets up
 * COM1, the IDT/TSS and the 8259 pair (all IRQs masked, vectors 0x20-0x2f),
 * then calls kmain() with interrupts disabled.  kmain's return value is the
 * exit code passed to guest_exit().
 */
#ifndef SDK_SDK_H
#define SDK_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvh.h"

#define GUEST_EXIT_OK 0
#define GUEST_EXIT_FAIL 1
#define GUEST_EXIT_PANIC 0x7f /* process status 255 on QEMU's isa-debug-exit */

int kmain(const struct hvm_start_info *info);
/* Entered from start.S in long mode with EBX of the PVH entry. */
__attribute__((noreturn)) void sdk_main(uint32_t start_info_paddr);

/*
 * Exit through isa-debug-exit (port 0xf4: status (code << 1) | 1), else
 * reset through the i8042, else halt forever.
 */
__attribute__((noreturn)) void guest_exit(int code);
__attribute__((noreturn, format(printf, 1, 2))) void panic(const char *fmt, ...);

const struct hvm_start_info *start_info(void);

/* Command line: space-separated "key=value" or bare "key" words. */
const char *cmdline(void);
bool cmdline_get(const char *key, const char **value, size_t *len);
uint64_t cmdline_get_u64(const char *key, uint64_t fallback);
void cmdline_get_str(const char *key, char *buf, size_t size, const char *fallback);

/* Memory map (hvm_start_info version >= 1). */
unsigned memmap_count(void);
const struct hvm_memmap_table_entry *memmap_entry(unsigned i);
uint64_t memmap_ram_bytes(void);
/* Reserve size bytes of RAM above the kernel image; returns a physical (= virtual) address. */
void *memmap_reserve(uint64_t size, uint64_t align);

#include "checksum.h"
#include "paging.h"
#include "pic.h"
#include "pit.h"
#include "printf.h"
#include "rtc.h"
#include "serial.h"
#include "string.h"
#include "trap.h"
#include "x86.h"

#endif
