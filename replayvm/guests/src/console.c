/*
 * console: virtio-console, port 0.
 *
 * Greets on the virtio console, reads one line from it (CR or LF ends it,
 * at most 128 bytes) and reports the line on COM1, then answers on the
 * virtio console.  The COM1 lines are what the tests compare; what went
 * out on the virtio console is "console: hello ..." and "you said: ...".
 *
 * Command line: none.
 * Exit code: 0; 1 without a virtio-console device or if it broke.
 */
#include "sdk.h"
#include "virtio_console.h"

#define LINE_MAX 128

static struct virtio_console con;

static void say(const char *s)
{
    virtio_console_write(&con, s, strlen(s));
}

int kmain(const struct hvm_start_info *info)
{
    static char line[LINE_MAX + 1];
    static char answer[LINE_MAX + 32];
    size_t len = 0;
    int c;

    (void)info;
    if (!virtio_console_open(&con)) {
        kprintf("console: no virtio-console device found (%s)\n", virtio_discovery_source());
        return GUEST_EXIT_FAIL;
    }
    kprintf("[var] console: virtio-console at 0x%lx, irq %u\n", (uint64_t)con.dev.base, con.dev.irq);
    say("console: hello from virtio-console\n");
    kprintf("console: greeting sent, waiting for a line\n");

    while ((c = virtio_console_getc(&con)) >= 0 && c != '\n' && c != '\r') {
        if (len < LINE_MAX)
            line[len++] = (char)c;
    }
    if (c < 0) {
        kprintf("console: the device stopped\n");
        return GUEST_EXIT_FAIL;
    }
    line[len] = '\0';
    kprintf("console: read %lu bytes: \"%s\"\n", (uint64_t)len, line);
    ksnprintf(answer, sizeof(answer), "you said: %s\n", line);
    say(answer);
    kprintf("console: sent %lu bytes in %lu buffers\n", con.tx_bytes, con.tx_buffers);
    return GUEST_EXIT_OK;
}
