// Products of a few rows with a weight matrix, C = A · Bᵀ (+ C or a bias), for the online
// path's batch of one customer.
//
// Why not sgemm: OpenBLAS 0.3.21's sgemm has no small-M path (the forwarding of M = 1 to
// gemv came in later releases), so a 1-row product still packs the whole weight matrix
// (4H x H floats for the recurrent step) into its panel layout on every call: the work is
// copying 256 KB, not multiplying, and its speed depends on the per-CPU copy and kernel
// routines that DYNAMIC_ARCH picks (on the Intel Sapphire Rapids machine the batch-1 forward
// ran at 7 GFLOP/s against 28 at batch 256). The weights are stored row-major with the
// reduced dimension contiguous (W_ih, W_hh: 4H x in, dense: P x (H + S)), so each output is
// one contiguous dot product: read each weight once, in order, no packing. The AVX2/FMA
// kernel is chosen at run time (__builtin_cpu_supports); other CPUs get a portable loop.
#pragma once

#include <cstddef>

#include "polled_gemm.h"

namespace recsys {

// Rows of A up to which small_rows_gemm_bt is used instead of sgemm: past this, sgemm's
// packing is amortised over enough rows. BM_OneRowProduct (bench/lstm_scoring_bench.cpp) put
// the crossover near 8 rows on both CPUs measured (AMD EPYC with AVX2; Intel Xeon with AVX-512
// and OpenBLAS's Cooperlake kernels): at 16 rows sgemm took 38-49 µs against 54-90 µs here.
constexpr size_t kSmallBatchRows = 8;

// C[m, n] = sum_k A[m, k] · B[n, k] + (row_init ? row_init[n] : beta · C[m, n]) for m < M,
// n < N: gemm_polled(false, true, ...) for few rows. beta is 0 or 1 (what the LSTM uses);
// with row_init, beta must be 1 and C is overwritten with row_init first, as in gemm_polled.
// Polls after each slice of B of at most kPollWeightBytes (a throwing poll leaves C partly
// computed). Results equal the sgemm ones up to float summation order.
void small_rows_gemm_bt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
                        float beta, float *C, size_t ldc, const PollFn &poll_fn, const float *row_init = nullptr);

// C = A · Bᵀ (+ beta C or a bias): small_rows_gemm_bt for M <= kSmallBatchRows, else gemm_polled.
void gemm_bt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb, float beta,
             float *C, size_t ldc, const PollFn &poll_fn, const float *row_init = nullptr);

// Which kernel small_rows_gemm_bt runs on this CPU: "avx2-fma" or "portable".
const char *small_batch_kernel_name();

// For tests: force the portable kernel (true) or restore run-time selection (false).
void force_portable_small_batch_kernel(bool portable);

}  // namespace recsys
