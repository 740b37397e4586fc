// Turning per-product scores into a ranked recommendation list.
#pragma once

#include <cstdint>
#include <vector>

namespace recsys {

struct Ranked {
    uint32_t product;
    float score;
};

// The k best products by score, excluding those the customer already holds (held[p] != 0).
// Ties are broken by product order so results are deterministic. Returns fewer than k when
// fewer products are eligible.
std::vector<Ranked> top_k(const float *scores, const uint8_t *held, uint32_t products, uint32_t k);

}  // namespace recsys
