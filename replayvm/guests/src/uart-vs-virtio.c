/*
 * uart-vs-virtio: the same text through the 16550 and through virtio-console.
 *
 * Full virtualisation traps on every byte (an OUT to THR and an IN of LSR
 * per character on COM1); paravirtual I/O hands the device 4 KiB buffers,
 * many per notification.  The guest prints `size` bytes of text (64-byte
 * lines "NNNNNN the quick brown fox ...") on COM1, then writes the same
 * bytes to the virtio console, and reports the CRC-32 of each stream and
 * the cost of each side in TSC cycles ("[var]").  Each phase starts with a
 * POST code on port 0x80 (1: COM1, 2: virtio-console, 3: done), which
 * `replayvm stats` uses to split the VM exits by phase (QEMU ignores it).
 *
 * Command line: size=N bytes (default 1 MiB, a multiple of 256).
 * Exit code: 0; 1 without a virtio-console device.
 */
#include "sdk.h"
#include "virtio_console.h"

#define LINE 64
#define PARTS 4 /* progress lines at 25%, 50%, 75% */
#define MAX_SIZE (16u << 20)
#define POST_PORT 0x80 /* PC POST-code port: marks the phases for `replayvm stats` */

static const char words[] = "the quick brown fox jumps over the lazy dog ";

static void make_line(char *out, uint64_t n)
{
    ksnprintf(out, 8, "%06lu ", n % 1000000);
    for (unsigned i = 7; i < LINE - 1; i++)
        out[i] = words[(n + i) % (sizeof(words) - 1)];
    out[LINE - 1] = '\n';
}

int kmain(const struct hvm_start_info *info)
{
    static struct virtio_console con;
    uint64_t size = cmdline_get_u64("size", 1u << 20);
    uint64_t quarter, t0, t1;
    uint32_t crc = 0;
    char *text;

    (void)info;
    if (size == 0 || size % (PARTS * LINE) || size > MAX_SIZE)
        panic("uart-vs-virtio: size must be a multiple of %u up to %u", PARTS * LINE, MAX_SIZE);
    if (!virtio_console_open(&con)) {
        kprintf("uart-vs-virtio: no virtio-console device found (%s)\n", virtio_discovery_source());
        return GUEST_EXIT_FAIL;
    }
    text = memmap_reserve(size, 64);
    for (uint64_t off = 0; off < size; off += LINE)
        make_line(text + off, off / LINE);
    crc = crc32_update(0, text, size);
    quarter = size / PARTS;
    kprintf("uart-vs-virtio: %lu bytes of text (%lu lines), crc32 0x%08x\n", size, size / LINE, crc);

    kprintf("uart-vs-virtio: COM1: one OUT per byte\n");
    outb(POST_PORT, 1);
    t0 = rdtsc();
    for (uint64_t off = 0; off < size; off += LINE) {
        if (off && off % quarter == 0)
            kprintf("uart-vs-virtio: COM1 %lu%%\n", off / quarter * 100 / PARTS);
        for (unsigned i = 0; i < LINE - 1; i++)
            serial_putc(text[off + i]);
        serial_putc('\n');
    }
    t1 = rdtsc();
    kprintf("uart-vs-virtio: COM1 done, %lu bytes\n", size);
    kprintf("[var] uart-vs-virtio: COM1 took %lu TSC cycles\n", t1 - t0);

    kprintf("uart-vs-virtio: virtio-console: %u-byte buffers, up to %u per notification\n",
            VIRTIO_CONSOLE_TX_CHUNK, con.tx.size);
    outb(POST_PORT, 2);
    t0 = rdtsc();
    for (unsigned part = 0; part < PARTS; part++) {
        if (part)
            kprintf("uart-vs-virtio: virtio-console %u%%\n", part * 100 / PARTS);
        if (!virtio_console_write(&con, text + part * quarter, quarter)) {
            kprintf("uart-vs-virtio: the virtio console stopped\n");
            return GUEST_EXIT_FAIL;
        }
    }
    t1 = rdtsc();
    outb(POST_PORT, 3);
    kprintf("uart-vs-virtio: virtio-console done, %lu bytes in %lu buffers, %lu notifications\n",
            con.tx_bytes, con.tx_buffers, con.tx.notifications);
    kprintf("[var] uart-vs-virtio: virtio-console took %lu TSC cycles\n", t1 - t0);
    return GUEST_EXIT_OK;
}
