/*
 * rng.h - the counter-based generator behind dropout masks (and, later,
 * initialisation): Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11).
 *
 * A draw is a pure function of (key, element index): no state, so any
 * element's number can be computed anywhere, in any order, on any backend.
 * kernels_cl/common.h carries the same function in OpenCL C; the dropout
 * parity test checks that the two agree bit for bit.
 *
 * Counter = (index, layer, step low, step high); key = (seed low, seed high).
 */
#ifndef NNCL_RNG_H
#define NNCL_RNG_H

#include <stdint.h>

#include "backend/backend.h"

/* Four 32-bit words from Philox4x32-10. */
void nncl__philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A uniform float in [0, 1) with 24 random bits, for element `index` under `key`. */
float nncl__rng_uniform(nncl_rng_key key, uint32_t index);

#endif /* NNCL_RNG_H */
