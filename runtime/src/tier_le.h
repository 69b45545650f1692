/* SPDX-License-Identifier: MIT */
/* tier_le.h - little-endian fields of the on-disk formats, byte by byte,
 * so the formats never depend on struct layout or host byte order. */
#ifndef KVMM_TIER_LE_H
#define KVMM_TIER_LE_H

#include <stdint.h>

static inline void tier_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void tier_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t tier_get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t tier_get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif /* KVMM_TIER_LE_H */
