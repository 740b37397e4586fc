#include "reduced_precision.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "errors.h"
#include "vector_clones.h"

namespace recsys {

namespace {

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// K is padded to a multiple of 4 for both precisions (one int8 quad or two bf16 pairs).
constexpr size_t kPadK = 4;
constexpr size_t kPadN = 16;

// One input row quantized to int8 (symmetric, scale max|a| / 127); returns the scale (0 for an
// all-zero row). Values past K are zero. This and the loops below run once per row and step
// around the kernels; compiled at the CPU's vector width they cost a fraction of the product
// (at baseline x86-64 they took a fifth of an int8 forward pass, measured with perf).
RECSYS_VECTOR_CLONES
float quantize_row_int8(const float *a, size_t K, size_t Kp, int8_t *q) {
    // Eight partial maxima: a single running maximum is a float reduction GCC will not vectorise.
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (size_t j = 0; j < 8; ++j) {
            const float v = std::fabs(a[k + j]);
            lane[j] = lane[j] > v ? lane[j] : v;
        }
    float amax = 0.0f;
    for (; k < K; ++k) amax = std::max(amax, std::fabs(a[k]));
    for (float v : lane) amax = std::max(amax, v);
    std::memset(q, 0, Kp);
    if (amax == 0.0f) return 0.0f;
    // Round half away from zero by truncation: it vectorises (lrintf does not).
    const float inv = 127.0f / amax;
    for (k = 0; k < K; ++k) {
        const float v = std::min(127.0f, std::max(-127.0f, a[k] * inv));
        q[k] = int8_t(int32_t(v + (v >= 0.0f ? 0.5f : -0.5f)));
    }
    return amax / 127.0f;
}

// to_bf16 over a row (round to nearest even), zeros from K to Kp.
RECSYS_VECTOR_CLONES
void bf16_row(const float *a, size_t K, size_t Kp, uint16_t *q) {
    for (size_t k = 0; k < K; ++k) {
        uint32_t u;
        std::memcpy(&u, &a[k], sizeof u);
        u += 0x7fffu + ((u >> 16) & 1u);
        q[k] = uint16_t(u >> 16);
    }
    for (size_t k = K; k < Kp; ++k) q[k] = 0;
}

// c += s (bf16 products are float already).
RECSYS_VECTOR_CLONES
void add_row(float *c, const float *s, size_t n) {
    for (size_t i = 0; i < n; ++i) c[i] += s[i];
}

// c += s x (row scale x each column's weight scale): an int8 product back to float.
RECSYS_VECTOR_CLONES
void add_scaled_row(float *c, const int32_t *s, float row_scale, const float *column_scale, size_t n) {
    for (size_t i = 0; i < n; ++i) c[i] += float(s[i]) * (row_scale * column_scale[i]);
}

}  // namespace

uint16_t to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even (finite values; weights are validated)
    return uint16_t(u >> 16);
}

float from_bf16(uint16_t b) {
    const uint32_t u = uint32_t(b) << 16;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

const char *precision_name(WeightPrecision precision) {
    switch (precision) {
        case WeightPrecision::Fp32: return "fp32";
        case WeightPrecision::Bf16: return "bf16";
        case WeightPrecision::Int8: return "int8";
    }
    return "unknown";
}

WeightPrecision parse_precision(const std::string &name) {
    if (name == "fp32") return WeightPrecision::Fp32;
    if (name == "bf16") return WeightPrecision::Bf16;
    if (name == "int8") return WeightPrecision::Int8;
    fail(ErrorKind::InvalidParameter, "unknown precision \"" + name + "\"", {},
         "The precision is \"fp32\", \"bf16\" or \"int8\".");
}

CpuFeatures CpuFeatures::detect() {
    static const CpuFeatures features = [] {
        CpuFeatures f;
        __builtin_cpu_init();
        // GCC's checks include the operating system's support for the vector registers (XCR0).
        f.avx2 = __builtin_cpu_supports("avx2");
        f.fma = __builtin_cpu_supports("fma");
        f.avx512f = __builtin_cpu_supports("avx512f");
        f.avx512bw = __builtin_cpu_supports("avx512bw");
        f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
        f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
        return f;
    }();
    return features;
}

namespace {
std::atomic<CpuFeatureCap> feature_cap{CpuFeatureCap::All};
}  // namespace

void set_cpu_feature_cap(CpuFeatureCap cap) { feature_cap.store(cap); }

CpuFeatures CpuFeatures::usable() {
    CpuFeatures f = detect();
    const CpuFeatureCap cap = feature_cap.load();
    if (cap != CpuFeatureCap::All) f.avx512f = f.avx512bw = f.avx512_vnni = f.avx512_bf16 = false;
    if (cap == CpuFeatureCap::None) f.avx2 = f.fma = false;
    return f;
}

const char *kernel_name(ReducedKernel kernel) {
    switch (kernel) {
        case ReducedKernel::Avx2Fma: return "avx2";
        case ReducedKernel::Avx512Bf16: return "avx512_bf16";
        case ReducedKernel::Avx512Vnni: return "avx512_vnni";
        case ReducedKernel::Portable: return "portable";
    }
    return "unknown";
}

ReducedKernel choose_kernel(WeightPrecision precision, const CpuFeatures &cpu) {
    const bool avx512 = cpu.avx512f && cpu.avx512bw;
    const bool avx2 = cpu.avx2 && cpu.fma;
    std::string lacks;
    if (precision == WeightPrecision::Bf16) {
        if (avx512 && cpu.avx512_bf16) return ReducedKernel::Avx512Bf16;
        if (avx2) return ReducedKernel::Avx2Fma;
        lacks = "AVX-512 BF16 and AVX2 with FMA";
    } else if (precision == WeightPrecision::Int8) {
        if (avx512 && cpu.avx512_vnni) return ReducedKernel::Avx512Vnni;
        if (avx2) return ReducedKernel::Avx2Fma;
        lacks = "AVX-512 VNNI and AVX2 with FMA";
    } else {
        fail(ErrorKind::Internal, "no reduced-precision kernel for a float32 model");
    }
    fail(ErrorKind::FeatureNotSupported,
         std::string("this CPU cannot score ") + (precision == WeightPrecision::Int8 ? "an " : "a ") +
             precision_name(precision) + " model",
         std::string("The ") + precision_name(precision) + " kernels need " +
             (precision == WeightPrecision::Bf16 ? "AVX-512 BF16" : "AVX-512 VNNI") +
             " or AVX2 with FMA; this CPU lacks " + lacks + ".",
         "Score the float32 version this one was derived from, or run on a CPU with those instructions.");
}

// ---- ReducedMatrix

ReducedMatrix::ReducedMatrix(WeightPrecision precision, const float *w, size_t N, size_t K)
    : precision_(precision), N_(N), K_(K), Np_(round_up(N, kPadN)), Kp_(round_up(std::max<size_t>(K, 1), kPadK)) {
    if (precision == WeightPrecision::Bf16) {
        bf16_.assign(Kp_ * Np_, 0);
        for (size_t n = 0; n < N; ++n)
            for (size_t k = 0; k < K; ++k) bf16_[((k / 2) * Np_ + n) * 2 + k % 2] = to_bf16(w[n * K + k]);
    } else if (precision == WeightPrecision::Int8) {
        int8_.assign(Kp_ * Np_, 0);
        row_scale_.assign(Np_, 0.0f);
        row_offset_.assign(Np_, 0);
        std::vector<int8_t> q(Kp_);
        for (size_t n = 0; n < N; ++n) {
            row_scale_[n] = quantize_row_int8(w + n * K, K, Kp_, q.data());
            int32_t sum = 0;
            for (size_t k = 0; k < K; ++k) {
                int8_[((k / 4) * Np_ + n) * 4 + k % 4] = q[k];
                sum += q[k];
            }
            row_offset_[n] = 128 * sum;
        }
    } else {
        fail(ErrorKind::Internal, "a reduced matrix needs bf16 or int8");
    }
}

size_t ReducedMatrix::packed_bytes(WeightPrecision precision, size_t N, size_t K) {
    const size_t Np = round_up(N, kPadN), Kp = round_up(std::max<size_t>(K, 1), kPadK);
    if (precision == WeightPrecision::Bf16) return Kp * Np * sizeof(uint16_t);
    if (precision == WeightPrecision::Int8) return Kp * Np + Np * (sizeof(float) + sizeof(int32_t));
    return 0;
}

size_t ReducedMatrix::allocated_bytes() const {
    return bf16_.capacity() * sizeof(uint16_t) + int8_.capacity() + row_scale_.capacity() * sizeof(float) +
           row_offset_.capacity() * sizeof(int32_t);
}

size_t ReducedMatrix::scratch_floats(WeightPrecision precision, size_t N, size_t K) {
    const size_t Np = round_up(N, kPadN), Kp = round_up(std::max<size_t>(K, 1), kPadK);
    // Quantized rows (Kp/2 or Kp/4 words each), their scales, and the accumulators.
    const size_t words = precision == WeightPrecision::Bf16 ? Kp / 2 : Kp / 4;
    return kRowChunk * (words + 1 + Np);
}

void ReducedMatrix::multiply_add(ReducedKernel kernel, const float *A, size_t lda, size_t M, float *C, size_t ldc,
                                 float *scratch, const PollFn &poll_fn) const {
    const bool bf16 = precision_ == WeightPrecision::Bf16;
    const size_t words = bf16 ? Kp_ / 2 : Kp_ / 4;
    uint32_t *qa = reinterpret_cast<uint32_t *>(scratch);
    float *a_scale = scratch + kRowChunk * words;
    float *acc = a_scale + kRowChunk;
    int32_t *iacc = reinterpret_cast<int32_t *>(acc);
    // Rows between two polls: kPollFlops of multiply-adds, whole chunks.
    const double row_flops = 2.0 * double(Np_) * double(Kp_);
    const size_t rows_per_poll = std::max<size_t>(kRowChunk, size_t(kPollFlops / row_flops) / kRowChunk * kRowChunk);
    for (size_t m0 = 0; m0 < M; m0 += kRowChunk) {
        const size_t mc = std::min(kRowChunk, M - m0);
        if (bf16) {
            for (size_t r = 0; r < mc; ++r)
                bf16_row(A + (m0 + r) * lda, K_, Kp_, reinterpret_cast<uint16_t *>(qa + r * words));
            switch (kernel) {
                case ReducedKernel::Avx512Bf16: reduced_kernels::bf16_avx512(qa, mc, bf16_.data(), Kp_, Np_, acc); break;
                case ReducedKernel::Avx2Fma: reduced_kernels::bf16_avx2(qa, mc, bf16_.data(), Kp_, Np_, acc); break;
                case ReducedKernel::Portable: reduced_kernels::bf16_portable(qa, mc, bf16_.data(), Kp_, Np_, acc); break;
                default: fail(ErrorKind::Internal, "kernel does not do bf16");
            }
            for (size_t r = 0; r < mc; ++r) add_row(C + (m0 + r) * ldc, acc + r * Np_, N_);
        } else {
            for (size_t r = 0; r < mc; ++r)
                a_scale[r] = quantize_row_int8(A + (m0 + r) * lda, K_, Kp_, reinterpret_cast<int8_t *>(qa + r * words));
            switch (kernel) {
                case ReducedKernel::Avx512Vnni:
                    reduced_kernels::int8_avx512(qa, mc, int8_.data(), row_offset_.data(), Kp_, Np_, iacc);
                    break;
                case ReducedKernel::Avx2Fma: reduced_kernels::int8_avx2(qa, mc, int8_.data(), Kp_, Np_, iacc); break;
                case ReducedKernel::Portable: reduced_kernels::int8_portable(qa, mc, int8_.data(), Kp_, Np_, iacc); break;
                default: fail(ErrorKind::Internal, "kernel does not do int8");
            }
            for (size_t r = 0; r < mc; ++r)
                add_scaled_row(C + (m0 + r) * ldc, iacc + r * Np_, a_scale[r], row_scale_.data(), N_);
        }
        if ((m0 + mc) % rows_per_poll == 0 || m0 + mc == M) poll(poll_fn);
    }
}

// ---- ReducedPrecisionWeights

ReducedPrecisionWeights::ReducedPrecisionWeights(const Model &model, const CpuFeatures &cpu) {
    if (model.precision == WeightPrecision::Fp32) return;
    kernel_ = choose_kernel(model.precision, cpu);
    build(model);
}

ReducedPrecisionWeights::ReducedPrecisionWeights(const Model &model, ReducedKernel kernel) {
    if (model.precision == WeightPrecision::Fp32) return;
    kernel_ = kernel;
    build(model);
}

void ReducedPrecisionWeights::build(const Model &model) {
    const WeightPrecision p = model.precision;
    const size_t H = model.hidden, G = 4 * H, L = model.layers.size();
    w_ih_.reserve(L);
    w_hh_.reserve(L);
    size_t scratch = 0;
    for (size_t l = 0; l < L; ++l) {
        const size_t in = model.layer_input_width(l);
        w_ih_.emplace_back(p, model.layers[l].w_ih.data(), G, in);
        w_hh_.emplace_back(p, model.layers[l].w_hh.data(), G, H);
        scratch = std::max({scratch, ReducedMatrix::scratch_floats(p, G, in), ReducedMatrix::scratch_floats(p, G, H)});
    }
    const size_t D = H + model.static_width(), P = model.product_count();
    dense_ = ReducedMatrix(p, model.dense_w.data(), P, D);
    scratch = std::max(scratch, ReducedMatrix::scratch_floats(p, P, D));
    scratch_.resize(scratch);
    active_ = true;
}

size_t ReducedPrecisionWeights::bytes_for(const Model &model) {
    const WeightPrecision p = model.precision;
    if (p == WeightPrecision::Fp32) return 0;
    const size_t H = model.hidden, G = 4 * H, L = model.layers.size();
    size_t bytes = 0, scratch = 0;
    for (size_t l = 0; l < L; ++l) {
        const size_t in = model.layer_input_width(l);
        bytes += ReducedMatrix::packed_bytes(p, G, in) + ReducedMatrix::packed_bytes(p, G, H);
        scratch = std::max({scratch, ReducedMatrix::scratch_floats(p, G, in), ReducedMatrix::scratch_floats(p, G, H)});
    }
    const size_t D = H + model.static_width(), P = model.product_count();
    bytes += ReducedMatrix::packed_bytes(p, P, D);
    scratch = std::max(scratch, ReducedMatrix::scratch_floats(p, P, D));
    return bytes + scratch * sizeof(float) + 2 * L * sizeof(ReducedMatrix);
}

size_t ReducedPrecisionWeights::allocated_bytes() const {
    if (!active_) return 0;
    size_t bytes = dense_.allocated_bytes() + scratch_.capacity() * sizeof(float) +
                   (w_ih_.capacity() + w_hh_.capacity()) * sizeof(ReducedMatrix);
    for (const auto &m : w_ih_) bytes += m.allocated_bytes();
    for (const auto &m : w_hh_) bytes += m.allocated_bytes();
    return bytes;
}

}  // namespace recsys
