// Log-linear latency buckets, for percentiles of server time kept in fixed memory
// (recsys.serving_stats keeps one such histogram per model, version and entry point in
// shared memory; src/pg/serving_stats.cpp).
//
// Times are in nanoseconds. Below 2^10 ns (1.024 us) everything falls in bucket 0; from
// 2^10 ns up to 2^42 ns (73.3 minutes) each power of two is split into 8 equal buckets; at
// 2^42 ns and beyond, one last bucket. A bucket [lo, hi) in the log range is at most 1/8 =
// 12.5% of lo wide, so its midpoint, which latency_quantile_ns() reports, is within 6.25% of
// any time in it: the resolution of p50/p95/p99. Bucket 0 reports 0.512 us and the last
// bucket 2^42 ns, both clamped to the largest time seen, so a percentile never exceeds the max.
#pragma once

#include <cstdint>

namespace recsys {

struct LatencyBuckets {
    static constexpr int kSubBits = 3;                 // 2^3 = 8 buckets per power of two
    static constexpr int kSubBuckets = 1 << kSubBits;
    static constexpr int kMinExponent = 10;            // 2^10 ns = 1.024 us
    static constexpr int kMaxExponent = 42;            // 2^42 ns = 73.3 min
    static constexpr int kCount = 1 + (kMaxExponent - kMinExponent) * kSubBuckets + 1;  // 258

    // The bucket of a time; constant time, no loop.
    static int index(uint64_t ns) {
        if (ns < (uint64_t(1) << kMinExponent)) return 0;
        if (ns >= (uint64_t(1) << kMaxExponent)) return kCount - 1;
        const int e = 63 - __builtin_clzll(ns);  // kMinExponent <= e < kMaxExponent
        const int sub = int((ns >> (e - kSubBits)) & (kSubBuckets - 1));
        return 1 + (e - kMinExponent) * kSubBuckets + sub;
    }
    // Bucket i holds [lower_ns(i), upper_ns(i)); the last bucket has no upper bound (UINT64_MAX).
    static uint64_t lower_ns(int i);
    static uint64_t upper_ns(int i);
    // What a quantile falling in bucket i reports: its midpoint (see above).
    static double representative_ns(int i);
};

// The q-quantile (0 < q <= 1) of the times counted in counts[LatencyBuckets::kCount]: the
// representative time of the bucket holding the ceil(q * n)-th smallest time (nearest rank),
// clamped to max_ns, the largest time counted. Negative when the histogram is empty.
// Monotone in q, so p50 <= p95 <= p99 <= max always holds.
double latency_quantile_ns(const uint64_t *counts, double q, uint64_t max_ns);

}  // namespace recsys
