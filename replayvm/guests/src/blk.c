/*
 * blk: virtio-blk through the SDK driver.
 *
 * Finds the first virtio-blk device, prints its capacity and ID, writes a
 * xorshift64 pattern to `count` sectors from `sector`, reads them back and
 * compares, flushes, and checks that a read past the end fails with IOERR.
 * Device addresses, IRQs and offered features differ between machines:
 * those lines are "[var]".
 *
 * readall=1 then reads the whole disk sequentially (a throughput phase).
 * Command line: sector=N (default 64), count=N (default 16), seed=N.
 * Exit code: 0; 1 without a virtio-blk device or if a check failed.
 */
#include "sdk.h"
#include "virtio_blk.h"

#define MAX_COUNT 64

static uint8_t buffer[MAX_COUNT * VIRTIO_BLK_SECTOR_SIZE] __attribute__((aligned(16)));
static uint8_t pattern[MAX_COUNT * VIRTIO_BLK_SECTOR_SIZE] __attribute__((aligned(16)));

static const char *status_name(int status)
{
    switch (status) {
    case VIRTIO_BLK_S_OK:
        return "OK";
    case VIRTIO_BLK_S_IOERR:
        return "IOERR";
    case VIRTIO_BLK_S_UNSUPP:
        return "UNSUPP";
    default:
        return "no answer";
    }
}

int kmain(const struct hvm_start_info *info)
{
    uint64_t sector = cmdline_get_u64("sector", 64);
    uint64_t count = cmdline_get_u64("count", 16);
    uint64_t seed = cmdline_get_u64("seed", 0x5eed);
    uint32_t bytes = (uint32_t)(count * VIRTIO_BLK_SECTOR_SIZE);
    static struct virtio_blk blk;
    char id[VIRTIO_BLK_ID_BYTES + 1];
    bool ok = true;
    int st;

    (void)info;
    if (count == 0 || count > MAX_COUNT || seed == 0)
        panic("blk: count must be 1..%u and seed non-zero", MAX_COUNT);
    if (!virtio_blk_open(&blk)) {
        kprintf("blk: no virtio-blk device found (%s)\n", virtio_discovery_source());
        return GUEST_EXIT_FAIL;
    }
    kprintf("[var] blk: virtio-blk at 0x%lx, irq %u, features offered 0x%lx\n",
            (uint64_t)blk.dev.base, blk.dev.irq, blk.dev.offered);
    kprintf("blk: capacity %lu sectors (%lu KiB)%s\n", blk.capacity, blk.capacity / 2,
            blk.read_only ? ", read-only" : "");
    st = virtio_blk_get_id(&blk, id);
    kprintf("blk: get-id %s: \"%s\"\n", status_name(st), id);

    if (sector + count > blk.capacity) {
        kprintf("blk: the disk is too small for %lu sectors at %lu\n", count, sector);
        return GUEST_EXIT_FAIL;
    }
    xorshift64_fill((uint64_t *)pattern, bytes / 8, seed);
    st = virtio_blk_write(&blk, sector, pattern, bytes);
    kprintf("blk: write %lu sectors at %lu: %s\n", count, sector, status_name(st));
    ok &= st == (blk.read_only ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);

    memset(buffer, 0, bytes);
    st = virtio_blk_read(&blk, sector, buffer, bytes);
    kprintf("blk: read back %lu sectors: %s, %s, crc32 0x%08x\n", count, status_name(st),
            memcmp(buffer, pattern, bytes) == 0 ? "data matches" : "DATA DIFFERS",
            crc32_update(0, buffer, bytes));
    ok &= st == VIRTIO_BLK_S_OK && memcmp(buffer, pattern, bytes) == 0;

    st = virtio_blk_flush(&blk);
    kprintf("blk: flush: %s\n", status_name(st));
    ok &= st == VIRTIO_BLK_S_OK;

    st = virtio_blk_read(&blk, blk.capacity, buffer, VIRTIO_BLK_SECTOR_SIZE);
    kprintf("blk: read past the end: %s\n", status_name(st));
    ok &= st == VIRTIO_BLK_S_IOERR;

    if (cmdline_get_u64("readall", 0)) {
        /* Sequential read of the whole disk in 64 KiB requests, between POST codes 4
         * and 5 on port 0x80 so `replayvm stats`/`bench` can count this phase alone. */
        enum { CHUNK = 64 * 1024 };
        uint8_t *chunk = memmap_reserve(CHUNK, 64);
        uint64_t total = 0;
        outb(0x80, 4);
        for (uint64_t s = 0; s < blk.capacity; s += CHUNK / VIRTIO_BLK_SECTOR_SIZE) {
            uint64_t left = (blk.capacity - s) * VIRTIO_BLK_SECTOR_SIZE;
            uint32_t len = left < CHUNK ? (uint32_t)left : CHUNK;
            ok &= virtio_blk_read(&blk, s, chunk, len) == VIRTIO_BLK_S_OK;
            total += len;
        }
        outb(0x80, 5);
        kprintf("[var] blk: read %lu KiB sequentially\n", total / 1024);
    }
    kprintf("[var] blk: %lu notifications, %lu interrupts\n", blk.vq.notifications, blk.dev.interrupts);
    kprintf("blk: %s\n", ok ? "all checks passed" : "CHECK FAILED");
    return ok ? GUEST_EXIT_OK : GUEST_EXIT_FAIL;
}
