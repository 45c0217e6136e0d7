/* crc32c.c: CRC32C with the SSE4.2 instruction, or tables without it.
 *
 * The hardware path feeds the crc32 instruction 8 bytes at a time; the
 * software path is slicing-by-8 over tables built once on first use.  Both
 * work on the reflected polynomial 0x82F63B78 and give identical results;
 * crc32c() picks one per call from a flag resolved once (a benign race:
 * every thread computes the same value).
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] =
                (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = ~crc;

    pthread_once(&table_once, table_init);
    while (n && ((uintptr_t)b & 7)) {
        c = (c >> 8) ^ table[0][(c ^ *b++) & 0xFF];
        n--;
    }
    while (n >= 8) {
        /* Little-endian load: the low byte is the first byte in memory. */
        uint32_t lo = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                      (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        uint32_t hi = (uint32_t)b[4] | (uint32_t)b[5] << 8 |
                      (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        lo ^= c;
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^
            table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24] ^
            table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
            table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *b++) & 0xFF];
    return ~c;
}

#if defined(__x86_64__)

__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc,
                                                     const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t c = (uint32_t)~crc;

    while (n && ((uintptr_t)b & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *b++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        c = __builtin_ia32_crc32di(c, v);
        b += 8;
        n -= 8;
    }
    while (n--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *b++);
    return ~(uint32_t)c;
}

bool crc32c_hw_available(void)
{
    return __builtin_cpu_supports("sse4.2");
}

#else

uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    return crc32c_sw(crc, p, n);
}

bool crc32c_hw_available(void)
{
    return false;
}

#endif

/* 0 = not resolved yet, 1 = software, 2 = hardware. */
static int impl;

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    int i = __atomic_load_n(&impl, __ATOMIC_RELAXED);

    if (i == 0) {
        i = crc32c_hw_available() ? 2 : 1;
        __atomic_store_n(&impl, i, __ATOMIC_RELAXED);
    }
    return i == 2 ? crc32c_hw(crc, p, n) : crc32c_sw(crc, p, n);
}
