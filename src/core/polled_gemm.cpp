#include "polled_gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

namespace recsys {

namespace {

size_t clamp_count(double wanted, size_t most) {
    if (!(wanted >= 1.0)) return 1;
    return wanted >= double(most) ? most : size_t(wanted);
}

}  // namespace

void gemm_polled(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                 size_t ldb, float beta, float *C, size_t ldc, const PollFn &poll_fn, const float *row_init) {
    if (M == 0 || N == 0) return;
    auto piece = [&](size_t m0, size_t mc, size_t n0, size_t nc, size_t k0, size_t kc, float piece_beta) {
        const float *a = trans_a ? A + k0 * lda + m0 : A + m0 * lda + k0;
        const float *b = trans_b ? B + n0 * ldb + k0 : B + k0 * ldb + n0;
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(mc),
                    int(nc), int(kc), 1.0f, a, int(lda), b, int(ldb), piece_beta, C + m0 * ldc + n0, int(ldc));
    };
    const double k_work = double(std::max<size_t>(K, 1));
    if (!trans_a) {
        // Columns of C per piece: the weight slice (nc x K floats) fits kPollWeightBytes.
        const size_t column_bytes = std::max<size_t>(K, 1) * sizeof(float);
        const size_t nc = N * column_bytes <= kPollWeightBytes ? N : clamp_count(double(kPollWeightBytes / column_bytes), N);
        size_t mc = clamp_count(kPollFlops / (2.0 * double(nc) * k_work), M);
        if (row_init) mc = std::min(mc, clamp_count(double(kPollElements) / double(nc), M));
        for (size_t n0 = 0; n0 < N; n0 += nc) {
            const size_t ncols = std::min(nc, N - n0);
            for (size_t m0 = 0; m0 < M; m0 += mc) {
                const size_t nrows = std::min(mc, M - m0);
                if (row_init)
                    for (size_t r = m0; r < m0 + nrows; ++r)
                        std::memcpy(C + r * ldc + n0, row_init + n0, ncols * sizeof(float));
                piece(m0, nrows, n0, ncols, 0, K, beta);
                poll(poll_fn);
            }
        }
        return;
    }
    // C = Aᵀ·op(B) summed over K rows: pieces of K accumulate, row ranges of C bound its size.
    const size_t row_bytes = N * sizeof(float);
    const size_t mc = M * row_bytes <= kPollWeightBytes ? M : clamp_count(double(kPollWeightBytes / row_bytes), M);
    const size_t kc = K == 0 ? 0 : clamp_count(kPollFlops / (2.0 * double(mc) * double(N)), K);
    for (size_t m0 = 0; m0 < M; m0 += mc) {
        const size_t nrows = std::min(mc, M - m0);
        if (K == 0) {
            piece(m0, nrows, 0, N, 0, 0, beta);
            poll(poll_fn);
            continue;
        }
        for (size_t k0 = 0; k0 < K; k0 += kc) {
            piece(m0, nrows, 0, N, k0, std::min(kc, K - k0), k0 == 0 ? beta : 1.0f);
            poll(poll_fn);
        }
    }
}

}  // namespace recsys
