/* From start.S to kmain(), and back out through isa-debug-exit. */
#include "sdk.h"

#include <stdarg.h>

#define DEBUG_EXIT_PORT 0xf4
#define I8042_COMMAND 0x64
#define I8042_CMD_PULSE_RESET 0xfe

static const struct hvm_start_info *boot_info;

const struct hvm_start_info *start_info(void)
{
    return boot_info;
}

/* On the boot stack, interrupts disabled. */
void sdk_main(uint32_t start_info_paddr)
{
    const struct hvm_start_info *info =
        (const struct hvm_start_info *)(uintptr_t)start_info_paddr;

    serial_init();
    trap_init();
    pic_init(IRQ_BASE);
    if (!info || info->magic != XEN_HVM_START_MAGIC_VALUE)
        panic("boot: EBX=0x%x is not a PVH hvm_start_info", start_info_paddr);
    boot_info = info;
    guest_exit(kmain(info));
}

void guest_exit(int code)
{
    cli();
    serial_flush();
    outb(DEBUG_EXIT_PORT, (uint8_t)code);
    outb(I8042_COMMAND, I8042_CMD_PULSE_RESET);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void panic(const char *fmt, ...)
{
    va_list ap;

    cli();
    kprintf("panic: ");
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");
    guest_exit(GUEST_EXIT_PANIC);
}
