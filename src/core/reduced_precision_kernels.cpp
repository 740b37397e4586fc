// The reduced-precision GEMM kernels (layouts in reduced_precision.h). Each ISA's functions
// carry a target attribute instead of a global -m flag, so that the library loads on any x86-64
// CPU; choose_kernel() calls one only where CpuFeatures says the CPU has its instructions.
//
// Register blocking: MR input rows x NB vectors of output columns stay in registers across
// the whole K loop (the accumulators), so each packed weight vector loaded is used MR times.
#include <immintrin.h>

#include <cstring>

#include "reduced_precision.h"

namespace recsys::reduced_kernels {

namespace {

#define RECSYS_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define RECSYS_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define RECSYS_AVX2 __attribute__((target("avx2,fma")))

// ---- bf16, AVX-512 BF16: vdpbf16ps sums one bf16 pair per float lane (16 columns a vector).
template <int MR, int NB>
RECSYS_AVX512_BF16 void bf16_avx512_block(const uint32_t *a, size_t words, const uint16_t *w, size_t Np, size_t n0,
                                          float *out) {
    __m512 acc[MR][NB];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < words; ++k) {
        const uint16_t *wk = w + (k * Np + n0) * 2;
        __m512i wv[NB];
        for (int j = 0; j < NB; ++j) wv[j] = _mm512_loadu_si512(wk + j * 32);
        for (int r = 0; r < MR; ++r) {
            const __m512i av = _mm512_set1_epi32(int(a[r * words + k]));
            for (int j = 0; j < NB; ++j)
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)wv[j]);
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) _mm512_storeu_ps(out + r * Np + n0 + j * 16, acc[r][j]);
}

// ---- bf16, AVX2: a bf16 is the top half of a float, so widening is a shift (even k) or a
// mask (odd k), then FMA (8 columns a vector).
template <int MR, int NB>
RECSYS_AVX2 void bf16_avx2_block(const uint32_t *a, size_t words, const uint16_t *w, size_t Np, size_t n0,
                                 float *out) {
    __m256 acc[MR][NB];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_ps();
    const __m256i high = _mm256_set1_epi32(int(0xffff0000u));
    for (size_t k = 0; k < words; ++k) {
        const uint16_t *wk = w + (k * Np + n0) * 2;
        __m256 even[NB], odd[NB];
        for (int j = 0; j < NB; ++j) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(wk + j * 16));
            even[j] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            odd[j] = _mm256_castsi256_ps(_mm256_and_si256(v, high));
        }
        for (int r = 0; r < MR; ++r) {
            const uint32_t pair = a[r * words + k];
            const __m256 ae = _mm256_castsi256_ps(_mm256_set1_epi32(int(pair << 16)));
            const __m256 ao = _mm256_castsi256_ps(_mm256_set1_epi32(int(pair & 0xffff0000u)));
            for (int j = 0; j < NB; ++j) {
                acc[r][j] = _mm256_fmadd_ps(ae, even[j], acc[r][j]);
                acc[r][j] = _mm256_fmadd_ps(ao, odd[j], acc[r][j]);
            }
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) _mm256_storeu_ps(out + r * Np + n0 + j * 8, acc[r][j]);
}

// ---- int8, AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so the activations
// are offset by 128 (a + 128 >= 1) and 128 x the row's weight sum (row_offset) is taken off afterwards.
template <int MR, int NB>
RECSYS_AVX512_VNNI void int8_avx512_block(const uint32_t *a, size_t words, const int8_t *w, const int32_t *row_offset,
                                          size_t Np, size_t n0, int32_t *out) {
    __m512i acc[MR][NB];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_si512();
    for (size_t k = 0; k < words; ++k) {
        const int8_t *wk = w + (k * Np + n0) * 4;
        __m512i wv[NB];
        for (int j = 0; j < NB; ++j) wv[j] = _mm512_loadu_si512(wk + j * 64);
        for (int r = 0; r < MR; ++r) {
            const __m512i av = _mm512_set1_epi32(int(a[r * words + k] ^ 0x80808080u));
            for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, wv[j]);
        }
    }
    for (int j = 0; j < NB; ++j) {
        const __m512i offset = _mm512_loadu_si512(row_offset + n0 + j * 16);
        for (int r = 0; r < MR; ++r)
            _mm512_storeu_si512(out + r * Np + n0 + j * 16, _mm512_sub_epi32(acc[r][j], offset));
    }
}

// ---- int8, AVX2 (no VNNI): maddubs multiplies |a| by w with a's sign moved onto w (vpsignb);
// a pair of products is at most 2 x 127 x 127 < 32768, so the 16-bit sums never saturate, and
// vpmaddwd with ones widens them to int32: the same exact dot product as VNNI.
template <int MR, int NB>
RECSYS_AVX2 void int8_avx2_block(const uint32_t *a, size_t words, const int8_t *w, size_t Np, size_t n0,
                                 int32_t *out) {
    __m256i acc[MR][NB];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t k = 0; k < words; ++k) {
        const int8_t *wk = w + (k * Np + n0) * 4;
        __m256i wv[NB];
        for (int j = 0; j < NB; ++j) wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(wk + j * 32));
        for (int r = 0; r < MR; ++r) {
            const __m256i av = _mm256_set1_epi32(int(a[r * words + k]));
            const __m256i aabs = _mm256_abs_epi8(av);
            for (int j = 0; j < NB; ++j) {
                const __m256i p16 = _mm256_maddubs_epi16(aabs, _mm256_sign_epi8(wv[j], av));
                acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(p16, ones));
            }
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NB; ++j)
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + r * Np + n0 + j * 8), acc[r][j]);
}

// Runs Block<MR, NB> over M rows and Np columns (cols_per_vector columns a vector): blocks of
// MR rows and NB vectors where they fit, single rows and vectors at the edges.
template <int MR, int NB, typename BlockFull, typename BlockRowsTail, typename BlockColsTail, typename BlockBothTail>
void tile(size_t M, size_t Np, size_t cols_per_vector, BlockFull full, BlockRowsTail rows_tail,
          BlockColsTail cols_tail, BlockBothTail both_tail) {
    const size_t block_cols = NB * cols_per_vector;
    size_t m = 0;
    for (; m + MR <= M; m += MR) {
        size_t n = 0;
        for (; n + block_cols <= Np; n += block_cols) full(m, n);
        for (; n < Np; n += cols_per_vector) cols_tail(m, n);
    }
    for (; m < M; ++m) {
        size_t n = 0;
        for (; n + block_cols <= Np; n += block_cols) rows_tail(m, n);
        for (; n < Np; n += cols_per_vector) both_tail(m, n);
    }
}

}  // namespace

void bf16_avx512(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out) {
    const size_t words = Kp / 2;
    constexpr int MR = 4, NB = 4;
    tile<MR, NB>(
        M, Np, 16, [&](size_t m, size_t n) { bf16_avx512_block<MR, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx512_block<1, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx512_block<MR, 1>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx512_block<1, 1>(a + m * words, words, w, Np, n, out + m * Np); });
}

void bf16_avx2(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out) {
    const size_t words = Kp / 2;
    constexpr int MR = 4, NB = 2;
    tile<MR, NB>(
        M, Np, 8, [&](size_t m, size_t n) { bf16_avx2_block<MR, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx2_block<1, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx2_block<MR, 1>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { bf16_avx2_block<1, 1>(a + m * words, words, w, Np, n, out + m * Np); });
}

void int8_avx512(const uint32_t *a, size_t M, const int8_t *w, const int32_t *row_offset, size_t Kp, size_t Np,
                 int32_t *out) {
    const size_t words = Kp / 4;
    constexpr int MR = 4, NB = 4;
    tile<MR, NB>(
        M, Np, 16,
        [&](size_t m, size_t n) { int8_avx512_block<MR, NB>(a + m * words, words, w, row_offset, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx512_block<1, NB>(a + m * words, words, w, row_offset, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx512_block<MR, 1>(a + m * words, words, w, row_offset, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx512_block<1, 1>(a + m * words, words, w, row_offset, Np, n, out + m * Np); });
}

void int8_avx2(const uint32_t *a, size_t M, const int8_t *w, size_t Kp, size_t Np, int32_t *out) {
    const size_t words = Kp / 4;
    constexpr int MR = 4, NB = 2;
    tile<MR, NB>(
        M, Np, 8, [&](size_t m, size_t n) { int8_avx2_block<MR, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx2_block<1, NB>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx2_block<MR, 1>(a + m * words, words, w, Np, n, out + m * Np); },
        [&](size_t m, size_t n) { int8_avx2_block<1, 1>(a + m * words, words, w, Np, n, out + m * Np); });
}

void bf16_portable(const uint32_t *a, size_t M, const uint16_t *w, size_t Kp, size_t Np, float *out) {
    const size_t words = Kp / 2;
    for (size_t m = 0; m < M; ++m)
        for (size_t n = 0; n < Np; ++n) {
            float s = 0.0f;
            for (size_t k = 0; k < words; ++k) {
                const uint32_t pair = a[m * words + k];
                s += from_bf16(uint16_t(pair)) * from_bf16(w[(k * Np + n) * 2]);
                s += from_bf16(uint16_t(pair >> 16)) * from_bf16(w[(k * Np + n) * 2 + 1]);
            }
            out[m * Np + n] = s;
        }
}

void int8_portable(const uint32_t *a, size_t M, const int8_t *w, size_t Kp, size_t Np, int32_t *out) {
    const size_t words = Kp / 4;
    for (size_t m = 0; m < M; ++m)
        for (size_t n = 0; n < Np; ++n) {
            int32_t s = 0;
            for (size_t k = 0; k < words; ++k) {
                int8_t q[4];
                std::memcpy(q, &a[m * words + k], 4);
                for (int j = 0; j < 4; ++j) s += int32_t(q[j]) * int32_t(w[(k * Np + n) * 4 + j]);
            }
            out[m * Np + n] = s;
        }
}

}  // namespace recsys::reduced_kernels
