/* Stand-in for LoRaMac-node's utilities.h: the two helpers FragDecoder.c uses (our code). */
#ifndef FUOTA_INTEROP_UTILITIES_H
#define FUOTA_INTEROP_UTILITIES_H
#include <stdint.h>
#include <string.h>

static inline void memset1(uint8_t *dst, uint8_t value, uint16_t size) { memset(dst, value, size); }
static inline void memcpy1(uint8_t *dst, const uint8_t *src, uint16_t size) { memcpy(dst, src, size); }

#endif
