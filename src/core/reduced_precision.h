// Reduced-precision weight matrices for scoring (docs/reduced-precision.md): bf16 or int8
// weights with float32 accumulation, and the choice, at run time, of the kernel the CPU can run.
//
// Arithmetic, the same whatever kernel runs it (so a version scores the same way everywhere):
//   Bf16: weights and GEMM inputs rounded to bfloat16 (round to nearest even); products
//         summed in float32 (only the summation order differs between kernels).
//   Int8: weights quantized per output row (scale max|w| / 127, symmetric); each GEMM input
//         row quantized when it is used (scale max|a| / 127, symmetric); the dot product is
//         exact in int32, then scaled back in float32: every kernel gives the same bits.
//
// Kernels: AVX-512 (BF16 for bf16, VNNI for int8) and AVX2 with FMA; each is compiled with a
// function-level target attribute, so the library loads on any x86-64 CPU, and a model whose
// precision the CPU cannot run fails with Error(FeatureNotSupported) naming what it lacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"
#include "polled_gemm.h"

namespace recsys {

// "fp32", "bf16", "int8".
const char *precision_name(WeightPrecision precision);
// The inverse of precision_name(); throws Error(InvalidParameter) for anything else.
WeightPrecision parse_precision(const std::string &name);

// The CPU features the kernels use (with the operating system's support for their registers).
struct CpuFeatures {
    bool avx2 = false, fma = false;
    bool avx512f = false, avx512bw = false, avx512_vnni = false, avx512_bf16 = false;

    static CpuFeatures detect();  // this CPU, read once
    // detect() less what the process-wide cap removes (the kernels use this).
    static CpuFeatures usable();
};

// A process-wide cap on the features the kernels may use: it only ever removes features, so it
// cannot make a kernel run on a CPU without its instructions. For tests of the dispatch and for
// a DBA comparing kernels (the glue's superuser-only recsys.reduced_precision_kernels); it
// applies to scorers built after it is set.
enum class CpuFeatureCap : uint8_t { All, Avx2, None };
void set_cpu_feature_cap(CpuFeatureCap cap);

enum class ReducedKernel : uint8_t {
    Avx2Fma,     // bf16: widen to float32 and FMA; int8: sign/maddubs/madd (exact int32)
    Avx512Bf16,  // vdpbf16ps
    Avx512Vnni,  // vpdpbusd
    Portable,    // plain C++, for tests and as the reference (never chosen by choose_kernel)
};
const char *kernel_name(ReducedKernel kernel);

// The fastest kernel for a precision on a CPU with these features; throws
// Error(FeatureNotSupported) naming what the CPU lacks when none can run. Not for Fp32.
ReducedKernel choose_kernel(WeightPrecision precision, const CpuFeatures &cpu);

// One weight matrix W (N x K, row-major, as LstmLayer and Model::dense_w hold them), packed for
// C += A · Wᵀ with A (M x K) float32. Packing (k-groups interleaved per output column, so one
// vector load feeds 16 or 8 columns): bf16 [K/2][Np][2], int8 [K/4][Np][4], Np = N rounded up
// to 16, K padded with zeros.
class ReducedMatrix {
public:
    ReducedMatrix() = default;
    ReducedMatrix(WeightPrecision precision, const float *w, size_t N, size_t K);

    size_t rows() const { return N_; }
    size_t cols() const { return K_; }
    // Bytes held (capacities), for the memory accounting.
    size_t allocated_bytes() const;
    static size_t packed_bytes(WeightPrecision precision, size_t N, size_t K);
    // Floats of scratch a product with an N x K matrix needs (kRowChunk input rows at a time).
    static size_t scratch_floats(WeightPrecision precision, size_t N, size_t K);

    // Input rows quantized and multiplied together (the scratch holds this many).
    static constexpr size_t kRowChunk = 32;

    // C[m][n] += sum_k A[m][k] W[n][k] for M rows, with this precision's arithmetic, in pieces
    // of bounded work with a poll after each. scratch: scratch_floats() floats.
    void multiply_add(ReducedKernel kernel, const float *A, size_t lda, size_t M, float *C, size_t ldc,
                      float *scratch, const PollFn &poll_fn) const;

private:
    WeightPrecision precision_ = WeightPrecision::Fp32;
    size_t N_ = 0, K_ = 0, Np_ = 0, Kp_ = 0;
    std::vector<uint16_t> bf16_;    // bf16: packed weights
    std::vector<int8_t> int8_;      // int8: packed weights
    std::vector<float> row_scale_;  // int8: per output row (padded to Np)
    std::vector<int32_t> row_offset_;  // int8: 128 x the sum of each row's int8 weights (the VNNI offset)
};

// Every weight matrix of a model in its precision, with the kernel chosen for this CPU.
// Empty (active() false) for a float32 model.
class ReducedPrecisionWeights {
public:
    ReducedPrecisionWeights() = default;
    // Throws Error(FeatureNotSupported) when the CPU cannot run the model's precision.
    ReducedPrecisionWeights(const Model &model, const CpuFeatures &cpu);
    explicit ReducedPrecisionWeights(const Model &model) : ReducedPrecisionWeights(model, CpuFeatures::usable()) {}
    // As above with a given kernel (tests compare kernels; Portable is allowed here).
    ReducedPrecisionWeights(const Model &model, ReducedKernel kernel);

    bool active() const { return active_; }
    ReducedKernel kernel() const { return kernel_; }
    // The packed matrices; null for a float32 model.
    const ReducedMatrix *w_ih(size_t layer) const { return active_ ? &w_ih_[layer] : nullptr; }
    const ReducedMatrix *w_hh(size_t layer) const { return active_ ? &w_hh_[layer] : nullptr; }
    const ReducedMatrix *dense() const { return active_ ? &dense_ : nullptr; }
    float *scratch() { return scratch_.data(); }

    // What the constructor allocates for a model (0 for float32), = allocated_bytes().
    static size_t bytes_for(const Model &model);
    size_t allocated_bytes() const;

private:
    void build(const Model &model);
    bool active_ = false;
    ReducedKernel kernel_ = ReducedKernel::Portable;
    std::vector<ReducedMatrix> w_ih_, w_hh_;
    ReducedMatrix dense_;
    std::vector<float> scratch_;
};

// Kernel entry points (reduced_precision_kernels.cpp); the packed layouts are described above.
// Each computes acc (M x Np, float32 for bf16, int32 for int8) from packed inputs.
namespace reduced_kernels {
// a: M rows of Kp/2 bf16 pairs (uint32 each); w: packed bf16; out: M x Np floats (overwritten).
void bf16_avx512(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out);
void bf16_avx2(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out);
void bf16_portable(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out);
// a: M rows of Kp int8 (as uint32 quads); w: packed int8; out: M x Np int32 (overwritten).
void int8_avx512(const uint32_t *a, size_t M, const int8_t *w, const int32_t *row_offset, size_t Kp, size_t Np,
                 int32_t *out);
void int8_avx2(const uint32_t *a, size_t M, const int8_t *w, size_t Kp, size_t Np, int32_t *out);
void int8_portable(const uint32_t *a, size_t M, const int8_t *w, size_t Kp, size_t Np, int32_t *out);
}  // namespace reduced_kernels

// bfloat16 of a float, rounded to nearest even (finite inputs), and back.
uint16_t to_bf16(float x);
float from_bf16(uint16_t b);

}  // namespace recsys
