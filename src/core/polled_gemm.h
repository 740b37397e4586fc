// Cancellable compute: a poll callback that the LSTM loops call between pieces of work of
// bounded size, and an sgemm that splits a large product into such pieces.
//
// The core never knows what a poll does. The PostgreSQL glue sets it to
// check_for_interrupts(), which throws (PgError) when a cancel or statement_timeout is
// pending; the exception unwinds through the core frames. Every core object that takes a poll
// is exception-safe at each poll: it leaves nothing half-updated that a later call reads (see
// each class), and no poll ever runs on a BLAS thread (polls run between BLAS calls, on the
// caller's thread; OpenBLAS runs one thread per backend anyway).
#pragma once

#include <cstddef>
#include <functional>

namespace recsys {

// Called between pieces of work; may throw to stop the computation. Empty: never called.
using PollFn = std::function<void()>;

// Floating-point operations between two polls: 2^27 (134 MFLOP) is about 1.5 ms of single-
// thread AVX-512 sgemm and 15 ms on a core ten times slower, so a cancel is seen well within
// 100 ms whatever the model's size.
constexpr double kPollFlops = double(1u << 27);
// Bytes of a weight matrix one GEMM piece streams: a piece whose weight slice stays in cache
// is not slowed by memory bandwidth (a 268 MB W_hh read for a handful of rows would be).
constexpr size_t kPollWeightBytes = size_t(4) << 20;
// Elementwise work (floats touched by a cell update, a bias fill) between two polls.
constexpr size_t kPollElements = size_t(1) << 20;

inline void poll(const PollFn &fn) {
    if (fn) fn();
}

// C = op(A) · op(B) + beta · C, row-major (op = transpose when the flag is set), as
// cblas_sgemm with alpha = 1. A product of more than kPollFlops runs in pieces, with a poll
// after each (the pieces are the same with or without a poll, so are the results):
//   - A not transposed: the rows of C are independent; pieces are row ranges (and column
//     ranges of C when one row's weights exceed kPollWeightBytes), each computed by the same
//     kernel as the whole product would be.
//   - A transposed (weight gradients, C = Aᵀ·B summed over many rows): pieces are ranges of
//     the summed dimension K, accumulated into C (beta for the first, 1 after), and ranges of
//     C's rows when C itself is larger than kPollWeightBytes.
// row_init (optional, not transposed A only; requires beta = 1): before the product, each row
// of C is set to row_init[0, N) piece by piece (a bias), so that fill is bounded too.
// On a throwing poll C is partly computed; the caller treats it as garbage.
void gemm_polled(bool trans_a, bool trans_b, size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                 size_t ldb, float beta, float *C, size_t ldc, const PollFn &poll_fn,
                 const float *row_init = nullptr);

}  // namespace recsys
