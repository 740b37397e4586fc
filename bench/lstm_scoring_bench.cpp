// Core scoring loop alone (benchmark (b)) and the sgemm-bound rate (benchmark (d)), on the
// reference model, single-threaded BLAS. Prints customers/second; the ratio to torch is
// computed by bench/run_all.sh from the same run.
//
// RECSYS_BENCH_MODEL=/path/model.rsm scores that model file (e.g. the torch-exported weights
// of bench/torch_reference.py, so that (b) and (c) use the same weights) instead of
// bench::reference_model(); the inputs are bench::random_inputs either way.
//
// BM_OneRowProduct/<path>/<rows> is the recurrent step's product alone for 1 to 16 rows,
// (rows x 128) x (128 x 512), through OpenBLAS's sgemm and through small_batch_gemv (what the
// forward pass uses for up to kSmallBatchRows rows): where OpenBLAS's small-M sgemm is slow on
// a CPU (it packs the whole weight matrix per call), this shows it apart from the LSTM.
// The context lines name the OpenBLAS core that DYNAMIC_ARCH picked and the small-batch kernel.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "lstm_forward.h"
#include "model_format.h"
#include "polled_gemm.h"
#include "reference_model.h"
#include "small_batch_gemv.h"

using namespace recsys;

static const Model &bench_model() {
    static const Model model = [] {
        const char *path = std::getenv("RECSYS_BENCH_MODEL");
        if (path == nullptr || *path == '\0') return bench::reference_model();
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error(std::string("cannot open RECSYS_BENCH_MODEL ") + path);
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        Model m = parse_model(bytes.data(), bytes.size());
        std::fprintf(stderr, "lstm_scoring_bench: model %s (%zu bytes)\n", path, bytes.size());
        return m;
    }();
    return model;
}

static void BM_LstmForward(benchmark::State &state) {
    openblas_set_num_threads(1);
    const Model &m = bench_model();
    const size_t batch = size_t(state.range(0));
    std::vector<float> steps, statics, scores(batch * m.product_count());
    bench::random_inputs(m, batch, steps, statics);
    LstmForward forward(m, batch);
    for (auto _ : state) {
        forward.score(steps.data(), statics.data(), batch, scores.data());
        benchmark::DoNotOptimize(scores.data());
    }
    state.counters["customers_per_s"] =
        benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["flops_per_customer"] = bench::flops_per_customer(m);
    state.counters["gflops"] = benchmark::Counter(bench::flops_per_customer(m) * double(batch) *
                                                      double(state.iterations()) / 1e9,
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LstmForward)->Arg(1)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

// sgemm throughput on the shapes the model uses most: (B x 128) x (128 x 512) for the
// recurrent step and (T*B x 48) x (48 x 512) for the input projection.
static void BM_Sgemm(benchmark::State &state) {
    openblas_set_num_threads(1);
    const int M = int(state.range(0)), N = int(state.range(1)), K = int(state.range(2));
    std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(N) * K, 0.25f), c(size_t(M) * N, 0.0f);
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(), K, 1.0f, c.data(), N);
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["gflops"] =
        benchmark::Counter(2.0 * M * N * K * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->Args({1024, 512, 128})->Args({16384, 512, 48})->Args({1024, 512, 48})->UseRealTime();

static void BM_OneRowProduct(benchmark::State &state, bool use_sgemm) {
    openblas_set_num_threads(1);
    const size_t M = size_t(state.range(0)), N = 512, K = 128;
    std::vector<float> a(M * K, 0.5f), b(N * K, 0.25f), c(M * N, 0.0f);
    for (auto _ : state) {
        if (use_sgemm)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, a.data(), int(K),
                        b.data(), int(K), 1.0f, c.data(), int(N));
        else
            small_rows_gemm_bt(M, N, K, a.data(), K, b.data(), K, 1.0f, c.data(), N, PollFn());
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["gflops"] =
        benchmark::Counter(2.0 * double(M * N * K) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
    state.SetLabel(use_sgemm ? "openblas" : small_batch_kernel_name());
}
BENCHMARK_CAPTURE(BM_OneRowProduct, sgemm, true)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();
BENCHMARK_CAPTURE(BM_OneRowProduct, small_batch_gemv, false)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();

int main(int argc, char **argv) {
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
    benchmark::AddCustomContext("small_batch_kernel", small_batch_kernel_name());
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
