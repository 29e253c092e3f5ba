/*
 * hello: the smallest guest.  Greets, shows the command line it was given
 * and the RAM in its memory map.
 *
 * Command line: name=WHO (default "world").
 * Exit code: 0.
 */
#include "sdk.h"

int kmain(const struct hvm_start_info *info)
{
    char name[64];

    (void)info;
    cmdline_get_str("name", name, sizeof(name), "world");
    kprintf("hello: Hello, %s! This is a ReplayVM guest.\n", name);
    kprintf("hello: command line: \"%s\"\n", cmdline());
    kprintf("hello: memory map: %lu KiB of RAM\n", memmap_ram_bytes() >> 10);
    kprintf("hello: bye\n");
    return GUEST_EXIT_OK;
}
