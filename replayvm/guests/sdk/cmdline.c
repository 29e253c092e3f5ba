/*
 * Kernel command line from hvm_start_info.cmdline_paddr (what QEMU's and
 * ReplayVM's -append give): words separated by spaces, each "key=value"
 * or a bare "key".  The first word with a matching key wins.
 */
#include "sdk.h"

const char *cmdline(void)
{
    const struct hvm_start_info *info = start_info();

    if (!info || !info->cmdline_paddr)
        return "";
    return (const char *)(uintptr_t)info->cmdline_paddr;
}

bool cmdline_get(const char *key, const char **value, size_t *len)
{
    size_t key_len = strlen(key);
    const char *p = cmdline();

    while (*p) {
        const char *word = p, *end;

        while (*p == ' ')
            word = ++p;
        while (*p && *p != ' ')
            p++;
        end = p;
        if ((size_t)(end - word) < key_len || strncmp(word, key, key_len) != 0)
            continue;
        if (word + key_len == end) {
            *value = end;
            *len = 0;
            return true;
        }
        if (word[key_len] == '=') {
            *value = word + key_len + 1;
            *len = (size_t)(end - *value);
            return true;
        }
    }
    return false;
}

/* Decimal, or hexadecimal with 0x; a malformed number is a panic, not a guess. */
uint64_t cmdline_get_u64(const char *key, uint64_t fallback)
{
    const char *v;
    size_t len, i = 0;
    uint64_t n = 0;
    unsigned base = 10;

    if (!cmdline_get(key, &v, &len))
        return fallback;
    if (len > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == len)
        panic("cmdline: %s needs a number", key);
    for (; i < len; i++) {
        char c = v[i];
        unsigned digit;

        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = (unsigned)(c - 'A' + 10);
        else
            panic("cmdline: %s=%.*s is not a number", key, (int)len, v);
        if (n > (UINT64_MAX - digit) / base)
            panic("cmdline: %s=%.*s is too large", key, (int)len, v);
        n = n * base + digit;
    }
    return n;
}

void cmdline_get_str(const char *key, char *buf, size_t size, const char *fallback)
{
    const char *v;
    size_t len;

    if (!size)
        return;
    if (!cmdline_get(key, &v, &len)) {
        v = fallback;
        len = strlen(fallback);
    }
    if (len >= size)
        len = size - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
}
