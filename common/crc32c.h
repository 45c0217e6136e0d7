/* crc32c.h: CRC32C (Castagnoli), the checksum of chunk data blocks.
 *
 * The usual init/final inversion is applied inside, so a running checksum
 * is continued by passing the previous result:
 *     crc32c(crc32c(0, a, na), b, nb) == crc32c(0, ab, na + nb)
 * and crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef TESSERA_CRC32C_H
#define TESSERA_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Checksum @n bytes at @p, continuing from @crc (0 to start).  Uses the
 * SSE4.2 crc32 instruction when the CPU has it.  Thread-safe. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* The two implementations behind crc32c(), for tests and benchmarks.
 * crc32c_hw() may be called only when crc32c_hw_available(). */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n);
bool crc32c_hw_available(void);

#endif
