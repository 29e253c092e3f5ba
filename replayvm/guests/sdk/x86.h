/*
 * x86-64 instruction wrappers: port I/O, control registers, CPUID, TSC,
 * interrupt flag (Intel SDM vol. 2 for the instructions, vol. 3 §2.5 for
 * the control registers).
 */
#ifndef SDK_X86_H
#define SDK_X86_H

#include <stdbool.h>
#include <stdint.h>

#define RFLAGS_IF (1u << 9)

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint64_t read_cr0(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

static inline uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static inline void write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

static inline uint64_t read_cr4(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}

static inline void invlpg(uint64_t addr)
{
    __asm__ volatile("invlpg (%0)" : : "r"(addr) : "memory");
}

struct cpuid_regs {
    uint32_t eax, ebx, ecx, edx;
};

/* CPUID with an explicit subleaf: ECX is always defined (SDM vol. 2, CPUID). */
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf)
{
    struct cpuid_regs r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(subleaf));
    return r;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t read_rflags(void)
{
    uint64_t flags;
    __asm__ volatile("pushfq; popq %0" : "=r"(flags));
    return flags;
}

static inline void cli(void)
{
    __asm__ volatile("cli" : : : "memory");
}

static inline void sti(void)
{
    __asm__ volatile("sti" : : : "memory");
}

/* Disable interrupts and return whether they were enabled. */
static inline bool irq_save(void)
{
    bool enabled = (read_rflags() & RFLAGS_IF) != 0;
    cli();
    return enabled;
}

static inline void irq_restore(bool enabled)
{
    if (enabled)
        sti();
}

/*
 * Enable interrupts and halt until one arrives.  STI inhibits interrupts
 * until the end of the next instruction (SDM vol. 2, STI), so an interrupt
 * that is already pending wakes the HLT instead of slipping in before it.
 */
static inline void sti_hlt(void)
{
    __asm__ volatile("sti; hlt" : : : "memory");
}

#endif
