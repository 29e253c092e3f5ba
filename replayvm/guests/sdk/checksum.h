/* CRC-32 and a xorshift PRNG, for guests that compute something checkable. */
#ifndef SDK_CHECKSUM_H
#define SDK_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC-32 of IEEE 802.3 (reflected polynomial 0xedb88320), chained like
 * zlib's crc32(): crc32_update(crc32_update(0, a), b) == crc32(a + b).
 */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

/* Marsaglia's xorshift64 (shifts 13, 7, 17); state must not be 0. */
static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* Fill words[0..count) with successive xorshift64 outputs. */
void xorshift64_fill(uint64_t *words, size_t count, uint64_t seed);

#endif
