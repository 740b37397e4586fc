// The promotion gate's bootstrap at the size of a Santander month: 1,000 resamples over
// 1,000,000 customers (one billion draws), overall and over a six-value dimension (the same
// draws again, spread over six subpopulations). Prints draws per second.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "paired_comparison.h"
#include "splitmix64.h"

using namespace recsys;

namespace {

constexpr size_t kCustomers = 1000000;
constexpr uint32_t kResamples = 1000;

// MAP@7-shaped scores: 3% of customers add something and score in (0, 1].
void scores(std::vector<double> &a, std::vector<double> &b) {
    a.assign(kCustomers, 0.0);
    b.assign(kCustomers, 0.0);
    for (size_t i = 0; i < kCustomers; ++i) {
        if (splitmix64(3 * i) % 100 >= 3) continue;
        a[i] = double(splitmix64(3 * i + 1) >> 11) * 0x1.0p-53;
        b[i] = double(splitmix64(3 * i + 2) >> 11) * 0x1.0p-53;
    }
}

void BM_PairedBootstrapOverall(benchmark::State &state) {
    std::vector<double> a, b;
    scores(a, b);
    size_t polls = 0;
    for (auto _ : state) {
        auto interval = paired_bootstrap(a.data(), b.data(), nullptr, kCustomers, kResamples, 0.95, 42, [&] { ++polls; });
        benchmark::DoNotOptimize(interval);
    }
    state.counters["draws_per_s"] =
        benchmark::Counter(double(kCustomers) * kResamples * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PairedBootstrapOverall)->Unit(benchmark::kSecond)->Iterations(1);

void BM_CompareSubpopulationsSixValues(benchmark::State &state) {
    std::vector<double> a, b;
    scores(a, b);
    Subpopulations groups({"age"});
    const char *bands[] = {"<25", "25-34", "35-44", "45-54", "55-64", "65+"};
    for (size_t i = 0; i < kCustomers; ++i) {
        const uint32_t code = groups.code(0, bands[splitmix64(7 * i) % 6]);
        groups.add_customer(&code);
    }
    for (auto _ : state) {
        auto all = compare_subpopulations(groups, a.data(), b.data(), nullptr, kResamples, 0.95, 42);
        benchmark::DoNotOptimize(all);
    }
    state.counters["draws_per_s"] =
        benchmark::Counter(double(kCustomers) * kResamples * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CompareSubpopulationsSixValues)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
