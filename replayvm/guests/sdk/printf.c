/* Formatted output for the guests; see printf.h for what is supported. */
#include "printf.h"

#include <stdbool.h>
#include <stdint.h>

#include "serial.h"

struct sink {
    void (*put)(struct sink *s, char c);
    char *buf;
    size_t size;
    size_t count;
};

struct spec {
    bool left;
    bool zero;
    int width;
    int precision; /* -1: none */
};

static void emit(struct sink *s, char c)
{
    s->put(s, c);
    s->count++;
}

static void pad(struct sink *s, char c, int n)
{
    while (n-- > 0)
        emit(s, c);
}

static void format_string(struct sink *s, const struct spec *sp, const char *str)
{
    int len = 0;

    if (!str)
        str = "(null)";
    while (str[len] && (sp->precision < 0 || len < sp->precision))
        len++;
    if (!sp->left)
        pad(s, ' ', sp->width - len);
    for (int i = 0; i < len; i++)
        emit(s, str[i]);
    if (sp->left)
        pad(s, ' ', sp->width - len);
}

static void format_number(struct sink *s, const struct spec *sp, uint64_t value,
                          bool negative, unsigned base, bool upper, const char *prefix)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0, prefix_len = 0, len;

    do {
        tmp[n++] = digits[value % base];
        value /= base;
    } while (value);
    if (negative)
        prefix = "-";
    while (prefix && prefix[prefix_len])
        prefix_len++;
    len = n + prefix_len;

    if (!sp->left && !sp->zero)
        pad(s, ' ', sp->width - len);
    for (int i = 0; i < prefix_len; i++)
        emit(s, prefix[i]);
    if (!sp->left && sp->zero)
        pad(s, '0', sp->width - len);
    while (n)
        emit(s, tmp[--n]);
    if (sp->left)
        pad(s, ' ', sp->width - len);
}

static int format(struct sink *s, const char *fmt, va_list ap)
{
    while (*fmt) {
        struct spec sp = {.precision = -1};
        int longs = 0;
        uint64_t u;
        int64_t d;

        if (*fmt != '%') {
            emit(s, *fmt++);
            continue;
        }
        fmt++;
        for (;; fmt++) {
            if (*fmt == '-')
                sp.left = true;
            else if (*fmt == '0')
                sp.zero = true;
            else
                break;
        }
        if (*fmt == '*') {
            sp.width = va_arg(ap, int);
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            sp.width = sp.width * 10 + (*fmt++ - '0');
        if (*fmt == '.') {
            fmt++;
            sp.precision = 0;
            if (*fmt == '*') {
                sp.precision = va_arg(ap, int);
                fmt++;
            }
            while (*fmt >= '0' && *fmt <= '9')
                sp.precision = sp.precision * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            longs++;
            fmt++;
        }

        switch (*fmt) {
        case 'd':
        case 'i':
            d = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
            format_number(s, &sp, u, d < 0, 10, false, 0);
            break;
        case 'u':
        case 'x':
        case 'X':
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
            format_number(s, &sp, u, false, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0);
            break;
        case 'p':
            u = (uint64_t)(uintptr_t)va_arg(ap, void *);
            format_number(s, &sp, u, false, 16, false, "0x");
            break;
        case 's':
            format_string(s, &sp, va_arg(ap, const char *));
            break;
        case 'c':
            if (!sp.left)
                pad(s, ' ', sp.width - 1);
            emit(s, (char)va_arg(ap, int));
            if (sp.left)
                pad(s, ' ', sp.width - 1);
            break;
        case '%':
            emit(s, '%');
            break;
        case '\0':
            return (int)s->count;
        default: /* unknown conversion: show it */
            emit(s, '%');
            emit(s, *fmt);
            break;
        }
        fmt++;
    }
    return (int)s->count;
}

static void put_serial(struct sink *s, char c)
{
    (void)s;
    serial_putc(c);
}

static void put_buffer(struct sink *s, char c)
{
    if (s->count + 1 < s->size)
        s->buf[s->count] = c;
}

int kvprintf(const char *fmt, va_list ap)
{
    struct sink s = {.put = put_serial};

    return format(&s, fmt, ap);
}

int kprintf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = kvprintf(fmt, ap);
    va_end(ap);
    return n;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    struct sink s = {.put = put_buffer, .buf = buf, .size = size};
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = format(&s, fmt, ap);
    va_end(ap);
    if (size)
        buf[s.count < size ? s.count : size - 1] = '\0';
    return n;
}
