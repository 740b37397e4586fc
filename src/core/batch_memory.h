// How many bytes a batch of customers needs, computed before anything is allocated, so that a
// caller can size its batch to a memory budget (recsys.max_batch_memory in the glue).
//
// Every class that allocates batch-sized buffers (LstmForward, IncrementalScorer,
// LstmTrainer, EncodedBatch) has a static buffer_bytes(model) giving its allocation as
// fixed + per_customer x batch, and allocated_bytes() giving what it actually holds (the sum
// of its vectors' capacities); the unit tests check that the two agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "model.h"

namespace recsys {

struct BatchBytes {
    size_t fixed = 0;         // independent of the batch size
    size_t per_customer = 0;  // for each customer (example) of the batch

    // fixed + per_customer * batch, saturating at SIZE_MAX.
    size_t total(size_t batch) const;
    // The largest batch whose total() fits in budget (0 when not even one customer fits).
    size_t max_batch(size_t budget) const;

    BatchBytes &operator+=(const BatchBytes &o) {
        fixed += o.fixed;
        per_customer += o.per_customer;
        return *this;
    }
    friend BatchBytes operator+(BatchBytes a, const BatchBytes &b) { return a += b; }
};

template <typename T, typename A>
size_t vector_bytes(const std::vector<T, A> &v) {
    return v.capacity() * sizeof(T);
}

// An allocator that leaves resize()'s new elements uninitialised: a large batch buffer costs
// neither a memset nor page faults when it is allocated (only pages a batch writes become
// resident, and their first writes happen between polls), so neither the peak memory of a
// call with few customers nor the time to the first poll grows with the buffer's size.
// Every user writes an element before reading it.
template <typename T>
struct UninitAllocator : std::allocator<T> {
    template <typename U>
    struct rebind {
        using other = UninitAllocator<U>;
    };
    UninitAllocator() = default;
    template <typename U>
    UninitAllocator(const UninitAllocator<U> &) noexcept {}
    template <typename U>
    void construct(U *p) noexcept(std::is_nothrow_default_constructible<U>::value) {
        ::new (static_cast<void *>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U *p, Args &&...args) {
        ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
    }
};

// A batch buffer: a vector whose resize() does not initialise.
template <typename T>
using Buffer = std::vector<T, UninitAllocator<T>>;

// A batch's LSTM inputs as FeatureEncoder::encode writes them, and its outputs: what the glue
// scores from (steps T x batch x step_width, statics, scores, held flags, end months, lengths).
struct EncodedBatch {
    Buffer<float> steps, statics, scores;
    Buffer<uint8_t> held;
    Buffer<int32_t> end_month;
    Buffer<uint32_t> lengths;

    EncodedBatch(const Model &model, size_t max_batch);
    static BatchBytes buffer_bytes(const Model &model);
    size_t allocated_bytes() const;
};

// Bytes of raw snapshot rows (HistoryBatch) for one customer of a batch, assuming at most
// window + 1 months per customer and twice that for vector growth. The glue's stream flushes
// a batch early when its customers hold more rows than that (history_stream.h).
BatchBytes history_bytes(const Model &model);
// One snapshot row in a HistoryBatch (month, feature values, product flags).
size_t history_row_bytes(const Model &model);

// Bytes of the model's weights (float32), from its dimensions (before the weights are sized).
size_t weight_bytes(const Model &model);

}  // namespace recsys
