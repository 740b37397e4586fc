#include "ranking.h"

#include <algorithm>

namespace recsys {

std::vector<Ranked> top_k(const float *scores, const uint8_t *held, uint32_t products, uint32_t k) {
    std::vector<Ranked> eligible;
    eligible.reserve(products);
    for (uint32_t p = 0; p < products; ++p)
        if (!held || !held[p]) eligible.push_back({p, scores[p]});
    const auto better = [](const Ranked &a, const Ranked &b) {
        return a.score > b.score || (a.score == b.score && a.product < b.product);
    };
    const size_t n = std::min<size_t>(k, eligible.size());
    std::partial_sort(eligible.begin(), eligible.begin() + n, eligible.end(), better);
    eligible.resize(n);
    return eligible;
}

}  // namespace recsys
