/*
 * GDT selectors of the SDK (usable from C and assembly).  The GDT itself is
 * in start.S; trap.c fills in the TSS descriptor.
 */
#ifndef SDK_GDT_H
#define SDK_GDT_H

#define GDT_CODE32 0x08 /* flat 32-bit code, used only during boot */
#define GDT_DATA 0x10   /* flat data */
#define GDT_CODE64 0x18 /* 64-bit code (L=1) */
#define GDT_TSS 0x20    /* 64-bit TSS, 16-byte system descriptor */

#endif
