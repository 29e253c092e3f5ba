/* CRC-32 (table driven, one byte per step) and xorshift64 fill. */
#include "checksum.h"

#include <stdbool.h>

#define CRC32_POLY_REFLECTED 0xedb88320u

static uint32_t crc_table[256];
static bool crc_table_ready;

static void make_crc_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? CRC32_POLY_REFLECTED ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
    crc_table_ready = true;
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (!crc_table_ready)
        make_crc_table();
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void xorshift64_fill(uint64_t *words, size_t count, uint64_t seed)
{
    uint64_t state = seed;

    for (size_t i = 0; i < count; i++)
        words[i] = xorshift64(&state);
}
