// Champion/challenger statistics: two rankers scored on the same customers are compared
// customer by customer (paired), with a percentile bootstrap interval on the difference of
// their MAP@7, overall and per subpopulation (segment, age band, income band, tenure,
// channel, add history). Everything is deterministic for a given seed, so a validation can
// be re-run later and give the same figures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "polled_gemm.h"  // PollFn

namespace recsys {

// Mean of a (candidate), mean of b (production), mean of a - b, and the bootstrap interval of
// that mean difference at the requested confidence.
struct DifferenceInterval {
    size_t customers = 0;
    double mean_a = 0, mean_b = 0, difference = 0, low = 0, high = 0;
};

// Paired percentile bootstrap over the customers listed in `index` (n entries; nullptr: all
// customers 0 .. n - 1). Resample r (0-based) draws n customers with replacement: draw j uses
// h = splitmix64(splitmix64(splitmix64(seed) ^ (r + 1)) + j) and picks position
// (h >> 32) * n >> 32 of the list. (The seed is mixed first: with seed ^ (r + 1) alone, seeds
// that differ in their low bits, 1 and 2 or 42 and 43, would share almost all resamples and
// give the same interval.) A resample's mean is the sum of the drawn a - b, in draw order,
// divided by n; difference is the mean of a - b over the list. The interval is the pair of
// order statistics at ranks floor(alpha * R) and ceil((1 - alpha) * R) - 1 (0-based, clamped
// to [0, R - 1]) of the R sorted resampled means, alpha = (1 - confidence) / 2, computed as
// floor(alpha * R + 1e-9) and ceil((1 - alpha) * R - 1e-9) - 1 so that (1 - 0.95) / 2 * 1000
// gives rank 25 despite binary rounding. n = 0 gives all zeros. poll is called every few
// thousand draws so that a cancel stops a long run (what it throws propagates). Throws
// recsys::Error (InvalidParameter) when confidence is not in (0, 1) or resamples is 0,
// (ProgramLimit) when n exceeds 2^32 - 1.
DifferenceInterval paired_bootstrap(const double *a, const double *b, const uint32_t *index, size_t n,
                                    uint32_t resamples, double confidence, uint64_t seed, const PollFn &poll = {});

// The subpopulations a customer belongs to: one value per dimension (or none).
class Subpopulations {
public:
    static constexpr uint32_t kNone = UINT32_MAX;

    // Dimensions in the order their codes are stored for each customer.
    explicit Subpopulations(std::vector<std::string> dimensions);

    const std::vector<std::string> &dimensions() const { return dimensions_; }
    // The code of a value label within a dimension (added on first use; codes count from 0).
    uint32_t code(size_t dimension, const std::string &label);
    const std::string &label(size_t dimension, uint32_t code) const { return labels_[dimension][code]; }
    size_t value_count(size_t dimension) const { return labels_[dimension].size(); }

    // Appends one customer's codes (dimensions().size() of them, kNone for "not known"); a code
    // that code() did not hand out is refused.
    void add_customer(const uint32_t *codes);
    size_t customers() const { return dimensions_.empty() ? 0 : codes_.size() / dimensions_.size(); }
    uint32_t code_of(size_t customer, size_t dimension) const { return codes_[customer * dimensions_.size() + dimension]; }

private:
    std::vector<std::string> dimensions_;
    std::vector<std::vector<std::string>> labels_;
    std::vector<std::unordered_map<std::string, uint32_t>> codes_by_label_;  // labels_ inverted
    std::vector<uint32_t> codes_;
};

struct SubpopulationComparison {
    std::string dimension, value;
    uint64_t adders = 0;  // customers of the subpopulation with at least one add
    DifferenceInterval interval;
};

// Compares a and b within every (dimension, value) that has customers, in dimension order and
// then value label order (std::string's byte order). Each subpopulation is resampled on its
// own (paired_bootstrap over its customers in customer order), with the seed
// splitmix64(seed ^ fnv1a64("dimension=value")), FNV-1a 64-bit (offset basis
// 0xcbf29ce484222325, prime 0x100000001b3) of the UTF-8 bytes of the dimension name, '=' and
// the value label, so a subpopulation's interval does not depend on which other
// subpopulations exist. adder: 1 per customer with at least one add (nullptr: adders 0).
// a, b and adder are indexed by customer (0 .. groups.customers() - 1).
std::vector<SubpopulationComparison> compare_subpopulations(const Subpopulations &groups, const double *a,
                                                            const double *b, const uint8_t *adder,
                                                            uint32_t resamples, double confidence, uint64_t seed,
                                                            const PollFn &poll = {});

// Banding of raw Santander attributes into the labels used as subpopulation values.
// Lower bounds are inclusive (25 is "25-34", 50000 is "50k-100k", 12 months "1-5 years").
// NaN (a NULL) gives "unknown"; so does a negative tenure (the Kaggle file's -999999).
std::string age_band(double age);           // "<25", "25-34", "35-44", "45-54", "55-64", "65+"
std::string income_band(double income);     // gross household income in euros: "<50k", "50k-100k", "100k-200k", "200k+"
std::string tenure_band(double months);     // months with the bank: "new (<12 months)", "1-5 years", "5+ years"

}  // namespace recsys
