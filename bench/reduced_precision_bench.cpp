// Reduced-precision scoring against the float32 core loop (docs/reduced-precision.md), on the
// reference model (or RECSYS_BENCH_MODEL, a model file, e.g. one trained by
// bench/reduced_precision_quality.sh), single-threaded BLAS, same process, same inputs:
//   BM_Score/<precision>/<kernel>/<batch>  customers/s of LstmForward::score
//   max_abs_diff                           largest |score - float32 score| over the batch
// Kernels: "auto" is what this CPU gets; "avx2" caps it at AVX2 (the fallback on CPUs without
// AVX-512 BF16 or VNNI). A kernel the CPU cannot run is reported as skipped.
//
// RECSYS_PRECISION_DUMP=DIR also writes the weights, the batch-1024 inputs and the scores of
// each precision as raw little-endian float32 (DIR/manifest.json lists them), so that
// bench/reduced_precision_torch.py runs torch and its dynamically quantized LSTM on the same
// weights and inputs.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors.h"
#include "lstm_forward.h"
#include "model_format.h"
#include "reduced_precision.h"
#include "reference_model.h"

using namespace recsys;

namespace {

const Model &fp32_model() {
    static const Model model = [] {
        const char *path = std::getenv("RECSYS_BENCH_MODEL");
        if (path == nullptr || *path == '\0') return bench::reference_model();
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error(std::string("cannot open RECSYS_BENCH_MODEL ") + path);
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        Model m = parse_model(bytes.data(), bytes.size());
        m.precision = WeightPrecision::Fp32;
        std::fprintf(stderr, "reduced_precision_bench: model %s (%zu bytes)\n", path, bytes.size());
        return m;
    }();
    return model;
}

Model with_precision(WeightPrecision p) {
    Model m = fp32_model();
    m.precision = p;
    return m;
}

std::vector<float> scores_of(const Model &m, size_t batch, const std::vector<float> &steps,
                             const std::vector<float> &statics) {
    LstmForward forward(m, batch);
    std::vector<float> scores(batch * m.product_count());
    forward.score(steps.data(), statics.data(), batch, scores.data());
    return scores;
}

void BM_Score(benchmark::State &state, WeightPrecision precision, CpuFeatureCap cap) {
    openblas_set_num_threads(1);
    const size_t batch = size_t(state.range(0));
    const Model m = with_precision(precision);
    std::vector<float> steps, statics;
    bench::random_inputs(m, batch, steps, statics);
    set_cpu_feature_cap(cap);
    try {
        LstmForward forward(m, batch);
        std::vector<float> scores(batch * m.product_count());
        for (auto _ : state) {
            forward.score(steps.data(), statics.data(), batch, scores.data());
            benchmark::DoNotOptimize(scores.data());
        }
        state.counters["customers_per_s"] =
            benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
        const std::vector<float> ref = scores_of(fp32_model(), batch, steps, statics);
        double worst = 0;
        for (size_t i = 0; i < scores.size(); ++i) worst = std::max(worst, double(std::fabs(scores[i] - ref[i])));
        state.counters["max_abs_diff"] = worst;
        if (precision != WeightPrecision::Fp32)
            state.SetLabel(kernel_name(choose_kernel(precision, CpuFeatures::usable())));
    } catch (const Error &e) {
        state.SkipWithError(e.what());
    }
    set_cpu_feature_cap(CpuFeatureCap::All);
}

void register_all() {
    struct Variant {
        const char *name;
        WeightPrecision precision;
        CpuFeatureCap cap;
    };
    const Variant variants[] = {
        {"fp32", WeightPrecision::Fp32, CpuFeatureCap::All},
        {"bf16/auto", WeightPrecision::Bf16, CpuFeatureCap::All},
        {"bf16/avx2", WeightPrecision::Bf16, CpuFeatureCap::Avx2},
        {"int8/auto", WeightPrecision::Int8, CpuFeatureCap::All},
        {"int8/avx2", WeightPrecision::Int8, CpuFeatureCap::Avx2},
    };
    for (const Variant &v : variants)
        benchmark::RegisterBenchmark((std::string("BM_Score/") + v.name).c_str(), BM_Score, v.precision, v.cap)
            ->Arg(1)
            ->Arg(1024)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
}

void write_floats(const std::string &path, const std::vector<float> &v) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char *>(v.data()), std::streamsize(v.size() * sizeof(float)));
    if (!out) throw std::runtime_error("cannot write " + path);
}

// Weights, inputs and each precision's scores for bench/reduced_precision_torch.py.
void dump(const std::string &dir) {
    const Model &m = fp32_model();
    if (m.layers.size() != 1) throw std::runtime_error("the dump is for one-layer models");
    const size_t batch = 1024;
    std::vector<float> steps, statics;
    bench::random_inputs(m, batch, steps, statics);
    write_floats(dir + "/w_ih.f32", m.layers[0].w_ih);
    write_floats(dir + "/w_hh.f32", m.layers[0].w_hh);
    write_floats(dir + "/b_ih.f32", m.layers[0].b_ih);
    write_floats(dir + "/b_hh.f32", m.layers[0].b_hh);
    write_floats(dir + "/dense_w.f32", m.dense_w);
    write_floats(dir + "/dense_b.f32", m.dense_b);
    write_floats(dir + "/steps.f32", steps);
    write_floats(dir + "/statics.f32", statics);
    std::string kernels;
    for (WeightPrecision p : {WeightPrecision::Fp32, WeightPrecision::Bf16, WeightPrecision::Int8}) {
        write_floats(dir + "/scores_" + precision_name(p) + ".f32", scores_of(with_precision(p), batch, steps, statics));
        if (p != WeightPrecision::Fp32)
            kernels += std::string(kernels.empty() ? "" : ", ") + "\"" + precision_name(p) + "\": \"" +
                       kernel_name(choose_kernel(p, CpuFeatures::usable())) + "\"";
    }
    std::ofstream manifest(dir + "/manifest.json");
    manifest << "{\"T\": " << m.window_months << ", \"B\": " << batch << ", \"W\": " << m.step_width()
             << ", \"H\": " << m.hidden << ", \"S\": " << m.static_width() << ", \"P\": " << m.product_count()
             << ", \"kernels\": {" << kernels << "}}\n";
    std::fprintf(stderr, "reduced_precision_bench: wrote weights, inputs and scores to %s\n", dir.c_str());
}

}  // namespace

int main(int argc, char **argv) {
    if (const char *dir = std::getenv("RECSYS_PRECISION_DUMP"); dir != nullptr && *dir != '\0') dump(dir);
    register_all();
    // What this CPU gets, in the output's context (and so in its JSON).
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
    for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
        std::string kernel;
        try {
            kernel = kernel_name(choose_kernel(p, CpuFeatures::usable()));
        } catch (const Error &e) {
            kernel = std::string("none: ") + e.what();
        }
        benchmark::AddCustomContext(std::string(precision_name(p)) + "_kernel", kernel);
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
