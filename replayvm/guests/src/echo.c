/*
 * echo: interrupt-driven serial input.
 *
 * Receives COM1 bytes through IRQ 4 into the SDK's ring buffer, idling in
 * "sti; hlt" while none are there, and prints "echo: <line>" for every
 * line.  A line ends at CR, LF or CR LF; BS/DEL erase; other control bytes
 * are shown as \xNN.  Lines longer than LINE_MAX are split.
 *
 * Command line: none.
 * Exit code: 0 after a line "quit" or a Ctrl-D (0x04) byte.
 */
#include "sdk.h"

#define LINE_MAX 128
#define CTRL_D 0x04

struct line {
    char text[LINE_MAX];
    size_t len;
};

static void print_line(const struct line *l)
{
    kprintf("echo: ");
    for (size_t i = 0; i < l->len; i++) {
        unsigned char c = (unsigned char)l->text[i];

        if (c < 0x20 || c >= 0x7f)
            kprintf("\\x%02x", c);
        else
            serial_putc((char)c);
    }
    kprintf("\n");
}

static bool is_quit(const struct line *l)
{
    return l->len == 4 && memcmp(l->text, "quit", 4) == 0;
}

int kmain(const struct hvm_start_info *info)
{
    struct line line = {0};
    unsigned lines = 0;
    int prev = 0;

    (void)info;
    kprintf("echo: ready; type lines, \"quit\" or Ctrl-D ends\n");
    serial_rx_enable();

    for (;;) {
        int c = serial_getc();

        if (c == CTRL_D) {
            if (line.len) {
                print_line(&line);
                lines++;
            }
            kprintf("echo: end of input (Ctrl-D)\n");
            break;
        }
        if (c == '\n' && prev == '\r') {
            prev = c; /* the LF of a CR LF pair */
            continue;
        }
        prev = c;
        if (c == '\r' || c == '\n') {
            if (is_quit(&line))
                break;
            print_line(&line);
            lines++;
            line.len = 0;
        } else if (c == '\b' || c == 0x7f) {
            if (line.len)
                line.len--;
        } else {
            if (line.len == LINE_MAX) {
                print_line(&line);
                lines++;
                line.len = 0;
            }
            line.text[line.len++] = (char)c;
        }
    }
    if (serial_rx_dropped())
        kprintf("echo: %lu input bytes dropped\n", serial_rx_dropped());
    kprintf("echo: bye after %u lines\n", lines);
    return GUEST_EXIT_OK;
}
