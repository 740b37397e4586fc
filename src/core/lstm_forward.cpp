#include "lstm_forward.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "activations.h"
#include "errors.h"

namespace recsys {

LstmForward::LstmForward(const Model &model, size_t max_batch)
    : model_(model),
      max_batch_(max_batch),
      T_(model.window_months),
      H_(model.hidden),
      P_(model.product_count()),
      S_(model.static_width()) {
    if (max_batch == 0) fail(ErrorKind::InvalidParameter, "batch size must be positive");
    gates_.resize(T_ * max_batch_ * 4 * H_);
    seq_a_.resize(model.layers.size() > 1 ? T_ * max_batch_ * H_ : 0);
    seq_b_.resize(model.layers.size() > 2 ? T_ * max_batch_ * H_ : 0);
    h_.resize(max_batch_ * H_);
    c_.resize(max_batch_ * H_);
    head_in_.resize(max_batch_ * (H_ + S_));
    state_.resize(max_batch_ * state_size());
    const size_t G = 4 * H_;
    bias_.resize(model.layers.size() * G);
    for (size_t l = 0; l < model.layers.size(); ++l)
        for (size_t j = 0; j < G; ++j) bias_[l * G + j] = model.layers[l].b_ih[j] + model.layers[l].b_hh[j];
}

void LstmForward::score(const float *steps, const float *statics, size_t batch, float *scores,
                        const uint32_t *lengths) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the scorer's buffers");
    if (batch == 0) return;
    std::fill(state_.begin(), state_.begin() + batch * state_size(), 0.0f);
    run(steps, T_, batch, lengths, state_.data());
    head(state_.data(), statics, batch, scores);
}

void LstmForward::run(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state) {
    if (batch > max_batch_ || n_steps > T_) fail(ErrorKind::Internal, "batch or sequence larger than the scorer's buffers");
    if (batch == 0 || n_steps == 0) return;
    const size_t G = 4 * H_, SS = state_size();
    const float *input = steps;
    size_t input_width = model_.step_width();
    for (size_t l = 0; l < model_.layers.size(); ++l) {
        const LstmLayer &layer = model_.layers[l];
        const bool last_layer = l + 1 == model_.layers.size();
        float *out_seq = last_layer ? nullptr : (l % 2 == 0 ? seq_a_.data() : seq_b_.data());

        // Input projections of all steps at once: (n*B x in) x (in x 4H), plus both biases.
        float *gates = gates_.data();
        const size_t rows = n_steps * batch;
        const float *bias = bias_.data() + l * G;
        for (size_t r = 0; r < rows; ++r) std::memcpy(gates + r * G, bias, G * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(G), int(input_width), 1.0f, input,
                    int(input_width), layer.w_ih.data(), int(input_width), 1.0f, gates, int(G));

        // This layer's initial h and c from the state; a zero state needs no recurrent GEMM
        // at step 0.
        bool zero_start = true;
        for (size_t b = 0; b < batch; ++b) {
            const float *s = state + b * SS + l * 2 * H_;
            std::memcpy(h_.data() + b * H_, s, H_ * sizeof(float));
            std::memcpy(c_.data() + b * H_, s + H_, H_ * sizeof(float));
        }
        for (size_t i = 0; i < batch * H_ && zero_start; ++i) zero_start = h_[i] == 0.0f;

        for (size_t t = 0; t < n_steps; ++t) {
            float *g = gates + t * batch * G;
            if (t > 0 || !zero_start)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(batch), int(G), int(H_), 1.0f, h_.data(),
                            int(H_), layer.w_hh.data(), int(H_), 1.0f, g, int(G));
            for (size_t b = 0; b < batch; ++b) {
                const size_t length = lengths ? lengths[b] : n_steps;
                if (t >= length) continue;  // past this customer's sequence: its state is final
                lstm_cell_update(g + b * G, c_.data() + b * H_, h_.data() + b * H_, H_);
                if (t + 1 == length) {
                    float *s = state + b * SS + l * 2 * H_;
                    std::memcpy(s, h_.data() + b * H_, H_ * sizeof(float));
                    std::memcpy(s + H_, c_.data() + b * H_, H_ * sizeof(float));
                }
            }
            if (out_seq) std::memcpy(out_seq + t * batch * H_, h_.data(), batch * H_ * sizeof(float));
        }
        input = out_seq;
        input_width = H_;
    }
}

void LstmForward::head(const float *state, const float *statics, size_t batch, float *scores) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the scorer's buffers");
    const size_t D = H_ + S_, SS = state_size();
    const float *last_h = state + (model_.layers.size() - 1) * 2 * H_;
    for (size_t b = 0; b < batch; ++b) {
        std::memcpy(head_in_.data() + b * D, last_h + b * SS, H_ * sizeof(float));
        if (S_) std::memcpy(head_in_.data() + b * D + H_, statics + b * S_, S_ * sizeof(float));
        std::memcpy(scores + b * P_, model_.dense_b.data(), P_ * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(batch), int(P_), int(D), 1.0f, head_in_.data(), int(D),
                model_.dense_w.data(), int(D), 1.0f, scores, int(P_));
    sigmoid_inplace(scores, batch * P_);
}

}  // namespace recsys
