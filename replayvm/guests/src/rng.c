/*
 * rng: virtio-entropy.
 *
 * Reads `bytes` bytes of entropy and prints only what does not depend on
 * them: how many arrived and whether they are not all one value.  Their
 * CRC is a "[var]" line, so a replay can show it reproduced the bytes.
 *
 * Command line: bytes=N (default 64, at most 4096).
 * Exit code: 0; 1 without a virtio-rng device or if bytes were missing.
 */
#include "sdk.h"
#include "virtio_rng.h"

#define MAX_BYTES 4096

int kmain(const struct hvm_start_info *info)
{
    static uint8_t buf[MAX_BYTES];
    static struct virtio_rng rng;
    uint64_t want = cmdline_get_u64("bytes", 64);
    size_t got;
    bool varied = false;

    (void)info;
    if (want == 0 || want > MAX_BYTES)
        panic("rng: bytes must be 1..%u", MAX_BYTES);
    if (!virtio_rng_open(&rng)) {
        kprintf("rng: no virtio-rng device found (%s)\n", virtio_discovery_source());
        return GUEST_EXIT_FAIL;
    }
    kprintf("[var] rng: virtio-rng at 0x%lx, irq %u\n", (uint64_t)rng.dev.base, rng.dev.irq);
    got = virtio_rng_read(&rng, buf, want);
    for (size_t i = 1; i < got; i++)
        varied |= buf[i] != buf[0];
    kprintf("rng: got %lu bytes\n", (uint64_t)got);
    kprintf("rng: %s\n", got < 2 || varied ? "bytes vary" : "ALL BYTES EQUAL");
    kprintf("[var] rng: %lu requests, crc32 0x%08x\n", rng.requests, crc32_update(0, buf, got));
    return got == want ? GUEST_EXIT_OK : GUEST_EXIT_FAIL;
}
