/*
 * Small printf: conversions d i u x X p s c %, flags '-' and '0', a width
 * (digits or '*'), a precision for %s, length modifiers l ll z.
 */
#ifndef SDK_PRINTF_H
#define SDK_PRINTF_H

#include <stdarg.h>
#include <stddef.h>

int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvprintf(const char *fmt, va_list ap);
/* Like snprintf: always NUL-terminates (n > 0), returns the untruncated length. */
int ksnprintf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
