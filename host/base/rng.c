#include "host/base/rng.h"

uint64_t dmx_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t dmx_rand_below(uint64_t *state, uint64_t bound) {
  /* Reject the top sliver of the 64-bit range that would make some results more likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = dmx_splitmix64(state);
  while (x >= limit);
  return x % bound;
}

double dmx_rand_open01(uint64_t *state) {
  return ((double)(dmx_splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double dmx_rand_half_open01(uint64_t *state) {
  return ((double)(dmx_splitmix64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}
