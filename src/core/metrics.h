// Ranking metrics of the Santander task: MAP@k (Kaggle's definition), precision@k,
// recall@k and catalogue coverage, accumulated over customers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace recsys {

// Average precision at k of one ranked list against the customer's actual set (Kaggle's
// apk): sum over positions i <= k whose product is actual and not already seen earlier in
// the list of precision@i, divided by min(|actual|, k); 0 when actual is empty.
// ranked: product indices, best first (only the first k are used); actual: P flags (0/1).
double average_precision_at_k(const uint32_t *ranked, size_t ranked_count, const uint8_t *actual, uint32_t products,
                              uint32_t k);

// Accumulates the metrics of one method over many customers.
//   map()            MAP@k over all customers; customers without adds count as 0.
//   map_adders()     MAP@k over customers with at least one add (Kaggle's score ignores the
//                    rest only in its normalisation; both are reported).
//   precision()      mean over customers with >= 1 add of |top-k ∩ actual| / k.
//   recall()         mean over customers with >= 1 add of |top-k ∩ actual| / |actual|.
//   coverage()       share of the P products appearing in at least one customer's top-k list.
class RankingMetrics {
public:
    RankingMetrics(uint32_t products, uint32_t k);

    void add(const uint32_t *ranked, size_t ranked_count, const uint8_t *actual);

    uint32_t k() const { return k_; }
    uint64_t customers() const { return customers_; }
    uint64_t adders() const { return adders_; }
    double map() const;
    double map_adders() const;
    double precision() const;
    double recall() const;
    double coverage() const;

private:
    uint32_t products_, k_;
    uint64_t customers_ = 0, adders_ = 0;
    double ap_sum_ = 0, precision_sum_ = 0, recall_sum_ = 0;
    std::vector<uint8_t> recommended_;
};

}  // namespace recsys
