#include "lstm_forward.h"

#include <algorithm>
#include <cstring>

#include "activations.h"
#include "errors.h"
#include "small_batch_gemv.h"

namespace recsys {

namespace {

size_t step_block_of(const Model &model) { return std::min<size_t>(model.window_months, LstmForward::kStepBlock); }

}  // namespace

LstmForward::LstmForward(const Model &model, size_t max_batch)
    : model_(model),
      max_batch_(max_batch),
      T_(model.window_months),
      H_(model.hidden),
      P_(model.product_count()),
      S_(model.static_width()),
      block_(step_block_of(model)),
      reduced_(model) {
    if (max_batch == 0) fail(ErrorKind::InvalidParameter, "batch size must be positive");
    // Exactly what buffer_bytes() counts.
    gates_.resize(block_ * max_batch_ * 4 * H_);
    seq_a_.resize(model.layers.size() > 1 ? block_ * max_batch_ * H_ : 0);
    seq_b_.resize(model.layers.size() > 2 ? block_ * max_batch_ * H_ : 0);
    h_.resize(max_batch_ * H_);
    c_.resize(max_batch_ * H_);
    head_in_.resize(max_batch_ * (H_ + S_));
    state_.resize(max_batch_ * state_size());
    const size_t G = 4 * H_;
    bias_.resize(model.layers.size() * G);
    for (size_t l = 0; l < model.layers.size(); ++l)
        for (size_t j = 0; j < G; ++j) bias_[l * G + j] = model.layers[l].b_ih[j] + model.layers[l].b_hh[j];
}

BatchBytes LstmForward::buffer_bytes(const Model &model) {
    const size_t H = model.hidden, G = 4 * H, L = model.layers.size(), block = step_block_of(model);
    BatchBytes b;
    b.fixed = L * G * sizeof(float) + ReducedPrecisionWeights::bytes_for(model);
    b.per_customer = (block * G + (L > 1 ? block * H : 0) + (L > 2 ? block * H : 0) + 2 * H +
                      (H + model.static_width()) + L * 2 * H) *
                     sizeof(float);
    return b;
}

size_t LstmForward::allocated_bytes() const {
    return vector_bytes(gates_) + vector_bytes(seq_a_) + vector_bytes(seq_b_) + vector_bytes(h_) + vector_bytes(c_) +
           vector_bytes(head_in_) + vector_bytes(bias_) + vector_bytes(state_) + reduced_.allocated_bytes();
}

void LstmForward::score(const float *steps, const float *statics, size_t batch, float *scores,
                        const uint32_t *lengths) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the scorer's buffers");
    if (batch == 0) return;
    std::fill(state_.begin(), state_.begin() + batch * state_size(), 0.0f);
    advance(steps, T_, batch, lengths, state_.data());
    head(state_.data(), statics, batch, scores);
}

void LstmForward::score_parts(size_t total_steps, const PartFn &part, const float *statics, size_t batch,
                              float *scores) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the scorer's buffers");
    if (batch == 0) return;
    std::fill(state_.begin(), state_.begin() + batch * state_size(), 0.0f);
    for (size_t first_step = 0; first_step < total_steps; first_step += T_) {
        const uint32_t *lengths = nullptr;
        const float *steps = part(first_step, &lengths);
        advance(steps, std::min(T_, total_steps - first_step), batch, lengths, state_.data());
        poll(poll_);
    }
    head(state_.data(), statics, batch, scores);
}

void LstmForward::run(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state) {
    if (batch > max_batch_ || n_steps > T_) fail(ErrorKind::Internal, "batch or sequence larger than the scorer's buffers");
    if (batch == 0 || n_steps == 0) return;
    // Work on a copy, so that a throwing poll leaves the caller's state as it was.
    const size_t n = batch * state_size();
    std::memcpy(state_.data(), state, n * sizeof(float));
    advance(steps, n_steps, batch, lengths, state_.data());
    std::memcpy(state, state_.data(), n * sizeof(float));
}

void LstmForward::advance(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state) {
    const size_t G = 4 * H_, SS = state_size(), W = model_.step_width(), L = model_.layers.size();
    // Customers whose cell updates run between two polls (a cell update touches about 6H floats).
    const size_t cells_per_poll = std::max<size_t>(1, kPollElements / (6 * H_));
    for (size_t t0 = 0; t0 < n_steps; t0 += block_) {
        const size_t nt = std::min(block_, n_steps - t0);
        const float *input = steps + t0 * batch * W;
        size_t input_width = W;
        for (size_t l = 0; l < L; ++l) {
            const LstmLayer &layer = model_.layers[l];
            float *out_seq = l + 1 == L ? nullptr : (l % 2 == 0 ? seq_a_.data() : seq_b_.data());

            // (project() -> gemm_bt: a few rows, e.g. one online customer, skip sgemm's packing.)
            // Input projections of the block's steps at once: (nt*B x in) x (in x 4H), plus both biases.
            float *gates = gates_.data();
            project(input, nt * batch, input_width, layer.w_ih.data(), reduced_.w_ih(l), G, gates, G,
                    bias_.data() + l * G);

            // This layer's h and c from the state; a zero state needs no recurrent GEMM at the
            // block's first step.
            bool zero_start = true;
            for (size_t b = 0; b < batch; ++b) {
                const float *s = state + b * SS + l * 2 * H_;
                std::memcpy(h_.data() + b * H_, s, H_ * sizeof(float));
                std::memcpy(c_.data() + b * H_, s + H_, H_ * sizeof(float));
            }
            for (size_t i = 0; i < batch * H_ && zero_start; ++i) zero_start = h_[i] == 0.0f;

            for (size_t t = 0; t < nt; ++t) {
                float *g = gates + t * batch * G;
                if (t > 0 || !zero_start)
                    project(h_.data(), batch, H_, layer.w_hh.data(), reduced_.w_hh(l), G, g, G, nullptr);
                for (size_t b = 0; b < batch; ++b) {
                    const size_t length = lengths ? lengths[b] : n_steps;
                    if (t0 + t < length)  // past this customer's sequence its state is final
                        lstm_cell_update(g + b * G, c_.data() + b * H_, h_.data() + b * H_, H_);
                    if ((b + 1) % cells_per_poll == 0) poll(poll_);
                }
                if (out_seq) std::memcpy(out_seq + t * batch * H_, h_.data(), batch * H_ * sizeof(float));
            }
            // Back into the state, for the next block (and the caller), of every customer
            // that had a step in this block.
            for (size_t b = 0; b < batch; ++b) {
                if (lengths && lengths[b] <= t0) continue;
                float *s = state + b * SS + l * 2 * H_;
                std::memcpy(s, h_.data() + b * H_, H_ * sizeof(float));
                std::memcpy(s + H_, c_.data() + b * H_, H_ * sizeof(float));
            }
            input = out_seq;
            input_width = H_;
        }
    }
}

void LstmForward::project(const float *A, size_t M, size_t K, const float *W, const ReducedMatrix *reduced, size_t N,
                          float *C, size_t ldc, const float *row_init) {
    if (reduced == nullptr) {
        gemm_bt(M, N, K, A, K, W, K, 1.0f, C, ldc, poll_, row_init);
        return;
    }
    if (row_init) {
        const size_t rows_per_poll = std::max<size_t>(1, kPollElements / N);
        for (size_t r = 0; r < M; ++r) {
            std::memcpy(C + r * ldc, row_init, N * sizeof(float));
            if ((r + 1) % rows_per_poll == 0) poll(poll_);
        }
    }
    reduced->multiply_add(reduced_.kernel(), A, K, M, C, ldc, reduced_.scratch(), poll_);
}

void LstmForward::head(const float *state, const float *statics, size_t batch, float *scores) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the scorer's buffers");
    const size_t D = H_ + S_, SS = state_size();
    const float *last_h = state + (model_.layers.size() - 1) * 2 * H_;
    for (size_t b = 0; b < batch; ++b) {
        std::memcpy(head_in_.data() + b * D, last_h + b * SS, H_ * sizeof(float));
        if (S_) std::memcpy(head_in_.data() + b * D + H_, statics + b * S_, S_ * sizeof(float));
    }
    project(head_in_.data(), batch, D, model_.dense_w.data(), reduced_.dense(), P_, scores, P_, model_.dense_b.data());
    const size_t rows_per_poll = std::max<size_t>(1, kPollElements / P_);
    for (size_t b0 = 0; b0 < batch; b0 += rows_per_poll) {
        sigmoid_inplace(scores + b0 * P_, std::min(rows_per_poll, batch - b0) * P_);
        poll(poll_);
    }
}

}  // namespace recsys
