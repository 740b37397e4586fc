// Paired percentile bootstrap of a MAP@7 difference, overall and per subpopulation
// (paired_comparison.h). The draw rule is fixed by the header so that a validation record
// can be recomputed exactly, by this code or by an independent implementation.
#include "paired_comparison.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "errors.h"
#include "splitmix64.h"

namespace recsys {

namespace {

// Draws between two polls: about 10 µs of resampling, so a cancel is seen at once while the
// poll's own cost stays negligible.
constexpr size_t kPollDraws = 8192;

// A tolerance on the rank products alpha * R and (1 - alpha) * R: (1 - 0.95) / 2 * 1000 is
// 25.000000000000021 in binary floating point, and must give rank 25, not 26.
constexpr double kRankTolerance = 1e-9;

// FNV-1a, 64 bit: a fully specified string hash, the same on every platform.
uint64_t fnv1a64(const std::string &text) {
    uint64_t hash = 0xCBF29CE484222325ull;
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 0x100000001B3ull;
    }
    return hash;
}

void check_arguments(size_t n, uint32_t resamples, double confidence) {
    if (!(confidence > 0.0 && confidence < 1.0))
        fail(ErrorKind::InvalidParameter, "bootstrap confidence must be between 0 and 1 (exclusive)");
    if (resamples == 0) fail(ErrorKind::InvalidParameter, "the bootstrap needs at least one resample");
    // Positions are drawn as (32-bit hash * n) >> 32, exact only while n fits in 32 bits.
    if (n > UINT32_MAX) fail(ErrorKind::ProgramLimit, "too many customers for one bootstrap (at most 4294967295)");
}

// The per-customer differences as the resampling loop reads them. A draw is one random read,
// and at a million customers a double per customer (8 MB) outgrows the caches and the TLB's
// reach: measured 25 ns a draw against 5 ns for 2-byte codes into a table of the distinct
// values. MAP@7 differences take few distinct values (most are 0: customers who add nothing
// score 0 under both rankers), so codes almost always apply; the table holds the very same
// doubles, so the sums are bit for bit those of reading d directly.
class Differences {
public:
    explicit Differences(std::vector<double> d) : d_(std::move(d)) {
        std::unordered_map<uint64_t, uint16_t> code_of_bits;
        codes_.resize(d_.size());
        for (size_t i = 0; i < d_.size(); ++i) {
            uint64_t bits;
            std::memcpy(&bits, &d_[i], sizeof bits);
            auto found = code_of_bits.find(bits);
            if (found == code_of_bits.end()) {
                if (table_.size() > UINT16_MAX) {  // too many distinct values: read d itself
                    codes_.clear();
                    table_.clear();
                    return;
                }
                found = code_of_bits.emplace(bits, uint16_t(table_.size())).first;
                table_.push_back(d_[i]);
            }
            codes_[i] = found->second;
        }
        d_.clear();
        d_.shrink_to_fit();
    }

    size_t size() const { return codes_.empty() ? d_.size() : codes_.size(); }

    // The mean of resample r: n draws with the header's rule, summed in draw order.
    double resampled_mean(uint64_t seed, uint32_t r, const PollFn &poll_fn) const {
        if (codes_.empty()) return resampled_mean(seed, r, poll_fn, [this](uint64_t i) { return d_[i]; });
        return resampled_mean(seed, r, poll_fn, [this](uint64_t i) { return table_[codes_[i]]; });
    }

private:
    template <class ValueAt>
    double resampled_mean(uint64_t seed, uint32_t r, const PollFn &poll_fn, ValueAt value_at) const {
        const uint64_t n = size();
        const uint64_t stream = splitmix64(splitmix64(seed) ^ (uint64_t(r) + 1));
        double sum = 0.0;
        for (uint64_t start = 0; start < n; start += kPollDraws) {
            const uint64_t end = std::min<uint64_t>(n, start + kPollDraws);
            for (uint64_t j = start; j < end; ++j) {
                const uint64_t h = splitmix64(stream + j);
                sum += value_at(((h >> 32) * n) >> 32);
            }
            poll(poll_fn);
        }
        return sum / double(n);
    }

    std::vector<double> d_;         // the differences, when there are too many distinct values
    std::vector<uint16_t> codes_;   // else each customer's code into table_
    std::vector<double> table_;
};

}  // namespace

DifferenceInterval paired_bootstrap(const double *a, const double *b, const uint32_t *index, size_t n,
                                    uint32_t resamples, double confidence, uint64_t seed, const PollFn &poll_fn) {
    check_arguments(n, resamples, confidence);
    DifferenceInterval result;
    result.customers = n;
    if (n == 0) return result;

    // Resampling one contiguous array of differences, rather than a and b through the index,
    // halves the random reads per draw; the mean of a - b over a resample is the resample's
    // difference of means.
    std::vector<double> d(n);
    double sum_a = 0.0, sum_b = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const size_t customer = index ? index[i] : i;
        sum_a += a[customer];
        sum_b += b[customer];
        d[i] = a[customer] - b[customer];
    }
    result.mean_a = sum_a / double(n);
    result.mean_b = sum_b / double(n);
    result.difference = std::accumulate(d.begin(), d.end(), 0.0) / double(n);

    const Differences differences(std::move(d));
    std::vector<double> means(resamples);
    for (uint32_t r = 0; r < resamples; ++r) means[r] = differences.resampled_mean(seed, r, poll_fn);
    std::sort(means.begin(), means.end());

    const double alpha = (1.0 - confidence) / 2.0;
    const double last = double(resamples) - 1.0;
    const double low_rank = std::clamp(std::floor(alpha * resamples + kRankTolerance), 0.0, last);
    const double high_rank = std::clamp(std::ceil((1.0 - alpha) * resamples - kRankTolerance) - 1.0, 0.0, last);
    result.low = means[size_t(low_rank)];
    result.high = means[size_t(high_rank)];
    return result;
}

Subpopulations::Subpopulations(std::vector<std::string> dimensions)
    : dimensions_(std::move(dimensions)), labels_(dimensions_.size()), codes_by_label_(dimensions_.size()) {}

uint32_t Subpopulations::code(size_t dimension, const std::string &label) {
    if (dimension >= dimensions_.size()) fail(ErrorKind::InvalidParameter, "subpopulation dimension out of range");
    auto &codes = codes_by_label_[dimension];
    const auto found = codes.find(label);
    if (found != codes.end()) return found->second;
    auto &labels = labels_[dimension];
    if (labels.size() >= kNone) fail(ErrorKind::ProgramLimit, "too many values in one subpopulation dimension");
    const uint32_t new_code = uint32_t(labels.size());
    labels.push_back(label);
    codes.emplace(label, new_code);
    return new_code;
}

void Subpopulations::add_customer(const uint32_t *codes) {
    for (size_t dim = 0; dim < dimensions_.size(); ++dim)
        if (codes[dim] != kNone && codes[dim] >= labels_[dim].size())
            fail(ErrorKind::InvalidParameter, "unknown subpopulation value code for dimension " + dimensions_[dim]);
    codes_.insert(codes_.end(), codes, codes + dimensions_.size());
}

std::vector<SubpopulationComparison> compare_subpopulations(const Subpopulations &groups, const double *a,
                                                            const double *b, const uint8_t *adder,
                                                            uint32_t resamples, double confidence, uint64_t seed,
                                                            const PollFn &poll_fn) {
    const size_t customers = groups.customers();
    check_arguments(customers, resamples, confidence);
    std::vector<SubpopulationComparison> comparisons;
    for (size_t dim = 0; dim < groups.dimensions().size(); ++dim) {
        // The customers of each value, in customer order.
        std::vector<std::vector<uint32_t>> members(groups.value_count(dim));
        for (size_t c = 0; c < customers; ++c) {
            const uint32_t value = groups.code_of(c, dim);
            if (value != Subpopulations::kNone) members[value].push_back(uint32_t(c));
        }
        std::vector<uint32_t> order(members.size());
        std::iota(order.begin(), order.end(), 0u);
        std::sort(order.begin(), order.end(),
                  [&](uint32_t x, uint32_t y) { return groups.label(dim, x) < groups.label(dim, y); });

        for (uint32_t value : order) {
            const auto &list = members[value];
            if (list.empty()) continue;
            SubpopulationComparison comparison;
            comparison.dimension = groups.dimensions()[dim];
            comparison.value = groups.label(dim, value);
            if (adder)
                for (uint32_t c : list) comparison.adders += adder[c] ? 1 : 0;
            const uint64_t own_seed = splitmix64(seed ^ fnv1a64(comparison.dimension + "=" + comparison.value));
            comparison.interval =
                paired_bootstrap(a, b, list.data(), list.size(), resamples, confidence, own_seed, poll_fn);
            comparisons.push_back(std::move(comparison));
        }
    }
    return comparisons;
}

std::string age_band(double age) {
    if (std::isnan(age)) return "unknown";
    if (age < 25) return "<25";
    if (age < 35) return "25-34";
    if (age < 45) return "35-44";
    if (age < 55) return "45-54";
    if (age < 65) return "55-64";
    return "65+";
}

std::string income_band(double income) {
    if (std::isnan(income)) return "unknown";
    if (income < 50000) return "<50k";
    if (income < 100000) return "50k-100k";
    if (income < 200000) return "100k-200k";
    return "200k+";
}

std::string tenure_band(double months) {
    // A negative tenure is the source's mark for a missing one (-999999 in the Kaggle file).
    if (std::isnan(months) || months < 0) return "unknown";
    if (months < 12) return "new (<12 months)";
    if (months < 60) return "1-5 years";
    return "5+ years";
}

}  // namespace recsys
