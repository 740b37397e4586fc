#include "metrics.h"

#include <algorithm>

#include "errors.h"

namespace recsys {

double average_precision_at_k(const uint32_t *ranked, size_t ranked_count, const uint8_t *actual, uint32_t products,
                              uint32_t k) {
    if (k == 0) fail(ErrorKind::InvalidParameter, "k must be at least 1");
    uint32_t actual_count = 0;
    for (uint32_t p = 0; p < products; ++p) actual_count += actual[p] ? 1 : 0;
    if (actual_count == 0) return 0.0;
    const size_t n = std::min<size_t>(ranked_count, k);
    std::vector<uint8_t> seen(products, 0);
    double score = 0.0;
    uint32_t hits = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint32_t p = ranked[i];
        if (p >= products) fail(ErrorKind::InvalidParameter, "ranked product index out of range");
        if (actual[p] && !seen[p]) {
            ++hits;
            score += double(hits) / double(i + 1);
        }
        seen[p] = 1;
    }
    return score / double(std::min(actual_count, k));
}

RankingMetrics::RankingMetrics(uint32_t products, uint32_t k) : products_(products), k_(k), recommended_(products, 0) {
    if (k == 0) fail(ErrorKind::InvalidParameter, "k must be at least 1");
}

void RankingMetrics::add(const uint32_t *ranked, size_t ranked_count, const uint8_t *actual) {
    ++customers_;
    const size_t n = std::min<size_t>(ranked_count, k_);
    uint32_t actual_count = 0;
    for (uint32_t p = 0; p < products_; ++p) actual_count += actual[p] ? 1 : 0;
    // Distinct hits in the top k (a product listed twice counts once).
    uint32_t hits = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint32_t p = ranked[i];
        if (p >= products_) fail(ErrorKind::InvalidParameter, "ranked product index out of range");
        bool duplicate = false;
        for (size_t j = 0; j < i; ++j) duplicate = duplicate || ranked[j] == p;
        if (!duplicate && actual[p]) ++hits;
        recommended_[p] = 1;
    }
    if (actual_count == 0) return;
    ++adders_;
    ap_sum_ += average_precision_at_k(ranked, ranked_count, actual, products_, k_);
    precision_sum_ += double(hits) / double(k_);
    recall_sum_ += double(hits) / double(actual_count);
}

double RankingMetrics::map() const { return customers_ ? ap_sum_ / double(customers_) : 0.0; }
double RankingMetrics::map_adders() const { return adders_ ? ap_sum_ / double(adders_) : 0.0; }
double RankingMetrics::precision() const { return adders_ ? precision_sum_ / double(adders_) : 0.0; }
double RankingMetrics::recall() const { return adders_ ? recall_sum_ / double(adders_) : 0.0; }
double RankingMetrics::coverage() const {
    if (products_ == 0) return 0.0;
    size_t covered = 0;
    for (uint8_t r : recommended_) covered += r;
    return double(covered) / double(products_);
}

}  // namespace recsys
