// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, fully specified hash and
// generator, so that seeded results are the same on every platform and library version.
#pragma once

#include <cstdint>

namespace recsys {

// The splitmix64 output for state x (the state advanced once, then mixed).
inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

}  // namespace recsys
