/* The one random number generator of the host code: splitmix64 (Steele, Lea, Flood 2014), a 64-bit
 * state advanced by a Weyl constant and mixed. Small, fast, and reproducible on every platform, so a
 * seed always gives the same parameters, instance vectors and data order. */
#ifndef DMX_BASE_RNG_H
#define DMX_BASE_RNG_H

#include <stdint.h>

uint64_t dmx_splitmix64(uint64_t *state);
/* Uniform integer in [0, bound) without modulo bias (rejection). */
uint64_t dmx_rand_below(uint64_t *state, uint64_t bound);
/* 53 random bits as a double at the middle of its interval: uniform on (0, 1), never 0 or 1. */
double dmx_rand_open01(uint64_t *state);
/* 53 random bits shifted up by one: uniform on (0, 1], so log() never sees 0 (the mux instance
 * vectors were drawn this way; kept so their values do not change). */
double dmx_rand_half_open01(uint64_t *state);

#endif
