#include "latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace recsys {

uint64_t LatencyBuckets::lower_ns(int i) {
    if (i <= 0) return 0;
    if (i >= kCount - 1) return uint64_t(1) << kMaxExponent;
    const int e = kMinExponent + (i - 1) / kSubBuckets;
    const uint64_t sub = uint64_t((i - 1) % kSubBuckets);
    return (uint64_t(1) << e) + (sub << (e - kSubBits));
}

uint64_t LatencyBuckets::upper_ns(int i) {
    if (i >= kCount - 1) return UINT64_MAX;
    return lower_ns(i + 1);
}

double LatencyBuckets::representative_ns(int i) {
    if (i >= kCount - 1) return double(lower_ns(i));
    return (double(lower_ns(i)) + double(upper_ns(i))) / 2;
}

double latency_quantile_ns(const uint64_t *counts, double q, uint64_t max_ns) {
    uint64_t n = 0;
    for (int i = 0; i < LatencyBuckets::kCount; ++i) n += counts[i];
    if (n == 0) return -1;
    q = std::min(1.0, std::max(q, 0.0));
    // Nearest rank: the ceil(q n)-th smallest, at least the first.
    const uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(n))));
    uint64_t seen = 0;
    int bucket = LatencyBuckets::kCount - 1;
    for (int i = 0; i < LatencyBuckets::kCount; ++i) {
        seen += counts[i];
        if (seen >= rank) {
            bucket = i;
            break;
        }
    }
    return std::min(LatencyBuckets::representative_ns(bucket), double(max_ns));
}

}  // namespace recsys
