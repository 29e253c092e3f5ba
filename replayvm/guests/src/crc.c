/*
 * crc: a compute-bound benchmark guest.
 *
 * Fills a 16 MiB buffer with xorshift64 output, then runs CRC-32 over it
 * `work` times, chained: the result is zlib.crc32(buffer * work).  No I/O
 * between the first and the last line, so it measures pure CPU speed.
 *
 * Command line: work=N (default 1), seed=N (default 0x2545f4914f6cdd1d).
 * Exit code: 0.
 */
#include "sdk.h"

#define BUFFER_SIZE (16ul << 20)
#define DEFAULT_SEED 0x2545f4914f6cdd1dul

int kmain(const struct hvm_start_info *info)
{
    uint64_t work = cmdline_get_u64("work", 1);
    uint64_t seed = cmdline_get_u64("seed", DEFAULT_SEED);
    uint64_t *buffer;
    uint32_t crc = 0;

    (void)info;
    if (!seed)
        panic("crc: seed must not be 0 (xorshift64 would stay 0)");
    buffer = memmap_reserve(BUFFER_SIZE, LARGE_PAGE_SIZE);
    kprintf("crc: %lu MiB of xorshift64 data, seed 0x%lx, work=%lu\n", BUFFER_SIZE >> 20,
            seed, work);
    xorshift64_fill(buffer, BUFFER_SIZE / sizeof(uint64_t), seed);
    for (uint64_t i = 0; i < work; i++)
        crc = crc32_update(crc, buffer, BUFFER_SIZE);
    kprintf("crc: crc32 = 0x%08x\n", crc);
    return GUEST_EXIT_OK;
}
