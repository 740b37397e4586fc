// Training the LSTM recommender: forward pass with caches, backpropagation through time,
// global-norm gradient clipping and Adam.
//
// Layout (all time-major, as LstmForward and FeatureEncoder use): for layer l the caches hold,
// for every step t and customer b, the activated gates [i | f | g | o] (4H), the cell state c_t
// and tanh(c_t) (H each), and the row [x_t | h_{t-1}] (in + H) that step t multiplies: one GEMM
// per step computes the gates from it and [W_ih | W_hh]ᵀ. The activations are the scorer's
// functions (activations.h), and the scores match LstmForward::score's within float rounding
// (the order of the GEMM sums differs; the unit tests compare them within 1e-6).
//
// Backward, per layer from the top: one elementwise pass per step turns dh_t, dc_t into the gate
// gradients dG_t (kept for all T), with one recurrent GEMM per step (dh_{t-1} = dG_t W_hh); every
// few steps the weight gradients of those steps are added by one GEMM, computed transposed:
// [dW_ih | dW_hh]ᵀ += [x_t | h_{t-1}]ᵀ dG_t, and the bias gradients (column sums of dG, in
// double). The input gradient passed to the layer below is dX = dG W_ih, over all T*B rows.
//
// Every GEMM runs through gemm_polled() (polled_gemm.h): large products are split into pieces of
// bounded work with a poll between them (the weight gradients accumulate over pieces of rows), so
// a cancel stops even the largest model's batch within milliseconds.
//
// Determinism: every reduction runs in a fixed order, so the same inputs, weights and seed give
// bit-identical results for a fixed BLAS thread count (OpenBLAS may partition GEMMs differently
// for another thread count; the unit tests call openblas_set_num_threads(1)).
#include "lstm_training.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "activations.h"
#include "errors.h"
#include "splitmix64.h"

namespace recsys {

namespace {
// Gate-gradient floats per weight-gradient GEMM in the backward pass (about 1 MB): small
// enough to be still in cache when the GEMM reads them (see forward_backward).
constexpr size_t kWeightGradientChunkFloats = size_t(1) << 18;
}  // namespace

// ---------------------------------------------------------------------------------------------
// ModelGradients

ModelGradients::ModelGradients(const Model &model) {
    const size_t H = model.hidden;
    const size_t G = 4 * H;
    layers.resize(model.layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
        layers[l].w_ih.assign(G * model.layer_input_width(l), 0.0f);
        layers[l].w_hh.assign(G * H, 0.0f);
        layers[l].b_ih.assign(G, 0.0f);
        layers[l].b_hh.assign(G, 0.0f);
    }
    dense_w.assign(size_t(model.product_count()) * (H + model.static_width()), 0.0f);
    dense_b.assign(model.product_count(), 0.0f);
}

namespace {

template <typename F>
void for_each_tensor(ModelGradients &g, F &&f) {
    for (auto &layer : g.layers) {
        f(layer.w_ih);
        f(layer.w_hh);
        f(layer.b_ih);
        f(layer.b_hh);
    }
    f(g.dense_w);
    f(g.dense_b);
}

template <typename F>
void for_each_tensor(Model &m, F &&f) {
    for (auto &layer : m.layers) {
        f(layer.w_ih);
        f(layer.w_hh);
        f(layer.b_ih);
        f(layer.b_hh);
    }
    f(m.dense_w);
    f(m.dense_b);
}

double sum_squares(const std::vector<float> &v) {
    double s = 0.0;
    for (float x : v) s += double(x) * double(x);
    return s;
}

// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, fully specified generator.
struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        const uint64_t z = splitmix64(state);
        state += 0x9E3779B97F4A7C15ull;
        return z;
    }
    // Uniform in [-k, k): 24 random bits, exactly representable as a float fraction.
    float uniform(double k) {
        const double u = double(next() >> 40) * (1.0 / 16777216.0);
        return float((2.0 * u - 1.0) * k);
    }
};

void fill_uniform(std::vector<float> &v, size_t n, double k, SplitMix64 &rng) {
    v.resize(n);
    for (auto &x : v) x = rng.uniform(k);
}

void check_shape(const std::vector<float> &v, size_t expected, const char *what) {
    if (v.size() != expected)
        fail(ErrorKind::Internal, "model weights do not match the model's dimensions",
             std::string(what) + " has " + std::to_string(v.size()) + " values, expected " +
                 std::to_string(expected) + ".");
}

}  // namespace

void ModelGradients::zero() {
    for_each_tensor(*this, [](std::vector<float> &v) { std::fill(v.begin(), v.end(), 0.0f); });
}

double ModelGradients::squared_norm() const {
    double s = 0.0;
    for (const auto &layer : layers)
        s += sum_squares(layer.w_ih) + sum_squares(layer.w_hh) + sum_squares(layer.b_ih) + sum_squares(layer.b_hh);
    return s + sum_squares(dense_w) + sum_squares(dense_b);
}

// ---------------------------------------------------------------------------------------------
// Initialisation

void initialize_weights(Model &model, uint64_t seed) {
    if (model.layers.empty() || model.hidden == 0 || model.product_count() == 0)
        fail(ErrorKind::InvalidParameter, "cannot initialise a model without layers, hidden units or products");
    SplitMix64 rng{seed};
    const size_t H = model.hidden;
    const size_t G = 4 * H;
    const double k = 1.0 / std::sqrt(double(H));
    for (size_t l = 0; l < model.layers.size(); ++l) {
        LstmLayer &layer = model.layers[l];
        fill_uniform(layer.w_ih, G * model.layer_input_width(l), k, rng);
        fill_uniform(layer.w_hh, G * H, k, rng);
        fill_uniform(layer.b_ih, G, k, rng);
        fill_uniform(layer.b_hh, G, k, rng);
    }
    const size_t D = H + model.static_width();
    const double kd = 1.0 / std::sqrt(double(D));
    fill_uniform(model.dense_w, size_t(model.product_count()) * D, kd, rng);
    fill_uniform(model.dense_b, model.product_count(), kd, rng);
}

// ---------------------------------------------------------------------------------------------
// Trainer state

struct LstmTrainer::State {
    size_t T = 0, H = 0, P = 0, S = 0, L = 0;
    std::vector<size_t> in_w;  // per layer: the width of its input (the step features, or H)
    // Forward caches, per layer: T x max_batch x {4H, H, H}.
    // (Buffers: allocated without initialisation; every element is written before it is read.)
    std::vector<Buffer<float>> acts, cells, tanh_cells;
    // Per layer, (T + 1) x max_batch x (in_w + H): row (t, b) is [x_t | h_{t-1}] of customer b,
    // the left operand of step t's one gate GEMM and of the weight gradients; h_{T-1} lies in
    // slot T (whose x part is unused). A layer's h_t is also copied into the x part of the layer
    // above. Slot 0's h part holds h_{-1} = 0 (step 0's gate product skips it).
    std::vector<Buffer<float>> xh;
    Buffer<float> head_in;  // max_batch x (H + S)
    Buffer<float> logits;   // max_batch x P
    Buffer<float> scores;   // max_batch x P
    size_t last_batch = 0;
    // Backward buffers.
    Buffer<float> dlogits;      // max_batch x P
    Buffer<float> dgates;       // T x max_batch x 4H (one layer at a time)
    Buffer<float> dh, dc;       // max_batch x H
    Buffer<float> dx_a, dx_b;   // T x max_batch x H: gradient w.r.t. a layer's input sequence
    std::vector<double> bias_acc;    // 4H, or P
    std::vector<float> bias_sum;     // layers x 4H: b_ih + b_hh of the current weights
    // Per layer, (in_w + H) x 4H: [W_ih | W_hh]ᵀ of the current weights (see forward_backward).
    std::vector<std::vector<float>> w_cat_t;
    std::vector<float> dw_t;         // max(in_w + H) x 4H: a layer's weight gradients, transposed
    // Adam moments, shaped like the weights.
    ModelGradients m, v;
    size_t steps = 0;

    State(const Model &model, size_t B) : m(model), v(model) {
        T = model.window_months;
        H = model.hidden;
        P = model.product_count();
        S = model.static_width();
        L = model.layers.size();
        const size_t G = 4 * H;
        in_w.resize(L);
        acts.resize(L);
        cells.resize(L);
        tanh_cells.resize(L);
        xh.resize(L);
        w_cat_t.resize(L);
        size_t widest = 0;
        for (size_t l = 0; l < L; ++l) {
            in_w[l] = model.layer_input_width(l);
            widest = std::max(widest, in_w[l] + H);
            acts[l].resize(T * B * G);
            cells[l].resize(T * B * H);
            tanh_cells[l].resize(T * B * H);
            xh[l].resize((T + 1) * B * (in_w[l] + H));
            w_cat_t[l].resize((in_w[l] + H) * G);
        }
        head_in.resize(B * (H + S));
        logits.resize(B * P);
        scores.resize(B * P);
        dlogits.resize(B * P);
        dgates.resize(T * B * G);
        dh.resize(B * H);
        dc.resize(B * H);
        if (L > 1) dx_a.resize(T * B * H);
        if (L > 2) dx_b.resize(T * B * H);
        bias_acc.resize(std::max(G, P));
        bias_sum.resize(L * G);
        dw_t.resize(widest * G);
    }
};

BatchBytes LstmTrainer::buffer_bytes(const Model &model) {
    const size_t T = model.window_months, H = model.hidden, P = model.product_count(), S = model.static_width();
    const size_t L = model.layers.size(), G = 4 * H;
    size_t inputs = 0, widest = 0;  // sum of the layers' input widths; largest input width + H
    for (size_t l = 0; l < L; ++l) {
        inputs += model.layer_input_width(l);
        widest = std::max<size_t>(widest, model.layer_input_width(l) + H);
    }
    BatchBytes b;
    b.fixed = 2 * weight_bytes(model) + std::max(G, P) * sizeof(double) +
              (L * G + (inputs + L * H) * G + widest * G) * sizeof(float);
    b.per_customer = (L * T * (G + 2 * H) + (T + 1) * (inputs + L * H) + (H + S) + 3 * P + T * G + 2 * H +
                      (L > 1 ? T * H : 0) + (L > 2 ? T * H : 0)) *
                     sizeof(float);
    return b;
}

size_t LstmTrainer::allocated_bytes() const {
    const State &st = *state_;
    size_t bytes = 0;
    for (size_t l = 0; l < st.L; ++l)
        bytes += vector_bytes(st.acts[l]) + vector_bytes(st.cells[l]) + vector_bytes(st.tanh_cells[l]) +
                 vector_bytes(st.xh[l]) + vector_bytes(st.w_cat_t[l]);
    bytes += vector_bytes(st.head_in) + vector_bytes(st.logits) + vector_bytes(st.scores) + vector_bytes(st.dlogits) +
             vector_bytes(st.dgates) + vector_bytes(st.dh) + vector_bytes(st.dc) + vector_bytes(st.dx_a) +
             vector_bytes(st.dx_b) + vector_bytes(st.bias_acc) + vector_bytes(st.bias_sum) + vector_bytes(st.dw_t);
    for (const ModelGradients *g : {&st.m, &st.v}) {
        for (const auto &layer : g->layers)
            bytes += vector_bytes(layer.w_ih) + vector_bytes(layer.w_hh) + vector_bytes(layer.b_ih) + vector_bytes(layer.b_hh);
        bytes += vector_bytes(g->dense_w) + vector_bytes(g->dense_b);
    }
    return bytes;
}

LstmTrainer::LstmTrainer(Model &model, size_t max_batch, AdamOptions options)
    : model_(model), max_batch_(max_batch), options_(options) {
    if (max_batch == 0) fail(ErrorKind::InvalidParameter, "batch size must be positive");
    if (model.layers.empty() || model.hidden == 0 || model.window_months == 0 || model.product_count() == 0)
        fail(ErrorKind::InvalidParameter, "the model needs a window, hidden units, products and LSTM layers");
    if (!(options.learning_rate > 0.0f) || !(options.beta1 >= 0.0f && options.beta1 < 1.0f) ||
        !(options.beta2 >= 0.0f && options.beta2 < 1.0f) || !(options.epsilon >= 0.0f))
        fail(ErrorKind::InvalidParameter, "invalid Adam options");
    const size_t H = model.hidden, G = 4 * H;
    for (size_t l = 0; l < model.layers.size(); ++l) {
        const LstmLayer &layer = model.layers[l];
        check_shape(layer.w_ih, G * model.layer_input_width(l), "w_ih");
        check_shape(layer.w_hh, G * H, "w_hh");
        check_shape(layer.b_ih, G, "b_ih");
        check_shape(layer.b_hh, G, "b_hh");
    }
    check_shape(model.dense_w, size_t(model.product_count()) * (H + model.static_width()), "dense_w");
    check_shape(model.dense_b, model.product_count(), "dense_b");
    state_ = std::make_shared<State>(model, max_batch);
}

const float *LstmTrainer::last_scores() const { return state_->scores.data(); }

size_t LstmTrainer::steps_taken() const { return state_->steps; }

// ---------------------------------------------------------------------------------------------
// Forward and backward

double LstmTrainer::forward_backward(const float *steps, const float *statics, const float *labels,
                                     const float *mask, size_t batch, ModelGradients &grads, size_t n_steps) {
    if (batch > max_batch_) fail(ErrorKind::Internal, "batch larger than the trainer's buffers");
    State &st = *state_;
    if (n_steps > st.T) fail(ErrorKind::Internal, "more steps than the trainer's window");
    // A from-start model's batch runs the months since its start month: fewer than T steps.
    const size_t T = n_steps ? n_steps : st.T, H = st.H, P = st.P, S = st.S, L = st.L, G = 4 * H, D = H + S;
    const size_t B = batch;
    // Set again only on success: after a throwing poll last_scores() holds no batch.
    st.last_batch = 0;
    if (grads.layers.size() != L) fail(ErrorKind::Internal, "gradients do not match the model");
    if (B == 0) {
        grads.zero();
        return 0.0;
    }
    // Customers whose elementwise step runs between two polls (about 8H floats each).
    const size_t cells_per_poll = std::max<size_t>(1, kPollElements / (8 * H));

    // ---- Forward, keeping every activation.
    // One GEMM per step computes the gates from [x_t | h_{t-1}] and [W_ih | W_hh]ᵀ: with the
    // input projection done for all T steps at once (K = the input width, 48 for the default
    // features) OpenBLAS ran at half its speed on the 16 x 256-row product, and the separate
    // recurrent product wrote every gate a second time; the fused per-step product is about a
    // fifth faster. Same sums as LstmForward::score up to their order (the unit tests compare
    // the scores within 1e-6).
    for (size_t l = 0; l < L; ++l) {
        const LstmLayer &layer = model_.layers[l];
        const size_t in_w = st.in_w[l], K = in_w + H;
        float *gates = st.acts[l].data();
        float *cells = st.cells[l].data();
        float *tcs = st.tanh_cells[l].data();
        float *xh = st.xh[l].data();
        // The layer above reads this layer's h_t as its x_t.
        float *xh_above = l + 1 < L ? st.xh[l + 1].data() : nullptr;
        const size_t K_above = 2 * H;
        if (l == 0)
            for (size_t r = 0; r < T * B; ++r) std::memcpy(xh + r * K, steps + r * in_w, in_w * sizeof(float));
        for (size_t b = 0; b < B; ++b) std::fill(xh + b * K + in_w, xh + b * K + K, 0.0f);  // h_{-1}
        float *bias = st.bias_sum.data() + l * G;
        for (size_t j = 0; j < G; ++j) bias[j] = layer.b_ih[j] + layer.b_hh[j];
        // [W_ih | W_hh]ᵀ (K x 4H), laid out once per call: every step's product then reads its
        // weights without a transpose, which OpenBLAS packs faster.
        float *w_cat_t = st.w_cat_t[l].data();
        for (size_t r = 0; r < G; ++r) {
            for (size_t k = 0; k < in_w; ++k) w_cat_t[k * G + r] = layer.w_ih[r * in_w + k];
            for (size_t k = 0; k < H; ++k) w_cat_t[(in_w + k) * G + r] = layer.w_hh[r * H + k];
        }
        for (size_t t = 0; t < T; ++t) {
            float *g = gates + t * B * G;
            const float *c_prev = t > 0 ? cells + (t - 1) * B * H : nullptr;
            // Step 0 has h_{-1} = 0: only the x part of the row is multiplied.
            gemm_polled(false, false, B, G, t > 0 ? K : in_w, xh + t * B * K, K, w_cat_t, G, 1.0f, g, G, poll_,
                        bias);
            for (size_t b = 0; b < B; ++b) {
                if (b % cells_per_poll == cells_per_poll - 1) poll(poll_);
                float *h = xh + ((t + 1) * B + b) * K + in_w;
                lstm_cell_forward_cached(g + b * G, c_prev ? c_prev + b * H : nullptr, cells + (t * B + b) * H,
                                         tcs + (t * B + b) * H, h, H);
                if (xh_above) std::memcpy(xh_above + (t * B + b) * K_above, h, H * sizeof(float));
            }
        }
    }

    // Head: logits = [h_T, statics] W^T + b.
    const size_t K_top = st.in_w[L - 1] + H;
    const float *h_last = st.xh[L - 1].data() + T * B * K_top + st.in_w[L - 1];
    float *head_in = st.head_in.data();
    float *z = st.logits.data();
    for (size_t b = 0; b < B; ++b) {
        std::memcpy(head_in + b * D, h_last + b * K_top, H * sizeof(float));
        if (S) std::memcpy(head_in + b * D + H, statics + b * S, S * sizeof(float));
    }
    gemm_polled(false, true, B, P, D, head_in, D, model_.dense_w.data(), D, 1.0f, z, P, poll_, model_.dense_b.data());
    float *scores = st.scores.data();
    std::memcpy(scores, z, B * P * sizeof(float));
    sigmoid_inplace(scores, B * P);

    // ---- Loss: mean BCE over the masked entries, from the logits (stable form).
    double count = 0.0;
    for (size_t i = 0; i < B * P; ++i) count += double(mask[i]);
    if (!(count > 0.0)) {
        grads.zero();
        return 0.0;
    }
    double loss = 0.0;
    float *dz = st.dlogits.data();
    const double inv_count = 1.0 / count;
    for (size_t i = 0; i < B * P; ++i) {
        if (mask[i] == 0.0f) {
            dz[i] = 0.0f;
            continue;
        }
        const double zi = double(z[i]);
        const double bce = std::max(zi, 0.0) - zi * double(labels[i]) + std::log1p(std::exp(-std::fabs(zi)));
        loss += double(mask[i]) * bce;
        dz[i] = float((double(scores[i]) - double(labels[i])) * double(mask[i]) * inv_count);
    }
    loss *= inv_count;

    // ---- Backward: head.
    // dense_w (P x D) = dzᵀ (P x B) · head_in (B x D); dense_b = column sums of dz.
    gemm_polled(true, false, P, D, B, dz, P, head_in, D, 0.0f, grads.dense_w.data(), D, poll_);
    {
        double *acc = st.bias_acc.data();
        std::fill(acc, acc + P, 0.0);
        for (size_t b = 0; b < B; ++b)
            for (size_t p = 0; p < P; ++p) acc[p] += double(dz[b * P + p]);
        for (size_t p = 0; p < P; ++p) grads.dense_b[p] = float(acc[p]);
    }
    // dh_T of the last layer = dz (B x P) · dense_w[:, :H] (P x H).
    float *dh = st.dh.data();
    float *dc = st.dc.data();
    gemm_polled(false, false, B, H, P, dz, P, model_.dense_w.data(), D, 0.0f, dh, H, poll_);

    // ---- Backward through time, layer by layer from the top.
    float *dgates = st.dgates.data();
    const float *dx_above = nullptr;  // T x B x H: gradient w.r.t. this layer's outputs from above
    for (size_t li = L; li-- > 0;) {
        const LstmLayer &layer = model_.layers[li];
        LstmLayer &glayer = grads.layers[li];
        const float *gates = st.acts[li].data();
        const float *cells = st.cells[li].data();
        const float *tcs = st.tanh_cells[li].data();
        const size_t in_w = st.in_w[li], K = in_w + H;
        const float *xh = st.xh[li].data();

        std::fill(dc, dc + B * H, 0.0f);
        if (li + 1 < L) std::fill(dh, dh + B * H, 0.0f);  // top layer: dh holds the head's gradient
        // The weight and bias gradients are summed chunk by chunk of steps, as soon as a chunk's
        // gate gradients are computed and still in cache (about 1 MB of dG): one GEMM per chunk,
        // transposed, [dW_ih | dW_hh]ᵀ += [X | h_{t-1}]ᵀ dG (h_{-1} = 0 in slot 0), which
        // OpenBLAS packs faster than dGᵀ [X | H] (dG, the large operand, untransposed). Summed
        // once over all T*B rows at the end, the products read all of dG back from memory.
        float *dw_t = st.dw_t.data();
        double *acc = st.bias_acc.data();
        std::fill(acc, acc + G, 0.0);
        const size_t chunk_steps = std::max<size_t>(1, kWeightGradientChunkFloats / (B * G));
        size_t chunk_end = T;  // the chunk is steps [t, chunk_end)
        for (size_t t = T; t-- > 0;) {
            const float *above = dx_above ? dx_above + t * B * H : nullptr;
            for (size_t b = 0; b < B; ++b) {
                if (b % cells_per_poll == cells_per_poll - 1) poll(poll_);
                const float *gb = gates + (t * B + b) * G;
                const float *tc = tcs + (t * B + b) * H;
                const float *cp = t > 0 ? cells + ((t - 1) * B + b) * H : nullptr;
                float *dgb = dgates + (t * B + b) * G;
                lstm_cell_backward(gb, tc, cp, above ? above + b * H : nullptr, dh + b * H, dc + b * H, dgb, H);
            }
            // dh_{t-1} = dG_t (B x 4H) · W_hh (4H x H).
            if (t > 0)
                gemm_polled(false, false, B, H, G, dgates + t * B * G, G, layer.w_hh.data(), H, 0.0f, dh, H, poll_);
            if (chunk_end - t == chunk_steps || t == 0) {
                const size_t r0 = t * B, n_rows = (chunk_end - t) * B;
                gemm_polled(true, false, K, G, n_rows, xh + r0 * K, K, dgates + r0 * G, G, chunk_end == T ? 0.0f : 1.0f,
                            dw_t, G, poll_);
                add_rows_as_double(acc, dgates + r0 * G, n_rows, G);
                poll(poll_);
                chunk_end = t;
            }
        }
        for (size_t r = 0; r < G; ++r) {
            for (size_t k = 0; k < in_w; ++k) glayer.w_ih[r * in_w + k] = dw_t[k * G + r];
            for (size_t k = 0; k < H; ++k) glayer.w_hh[r * H + k] = dw_t[(in_w + k) * G + r];
        }
        for (size_t j = 0; j < G; ++j) glayer.b_ih[j] = glayer.b_hh[j] = float(acc[j]);
        const size_t rows = T * B;

        // Gradient w.r.t. this layer's input sequence, for the layer below: dX = dG · W_ih.
        if (li > 0) {
            float *dx = (dx_above == st.dx_a.data()) ? st.dx_b.data() : st.dx_a.data();
            gemm_polled(false, false, rows, H, G, dgates, G, layer.w_ih.data(), H, 0.0f, dx, H, poll_);
            dx_above = dx;
        }
    }
    st.last_batch = B;
    return loss;
}

// ---------------------------------------------------------------------------------------------
// Clipping and Adam (as torch.nn.utils.clip_grad_norm_ and torch.optim.Adam, weight_decay 0)

double LstmTrainer::adam_step(ModelGradients &grads) {
    State &st = *state_;
    if (grads.layers.size() != model_.layers.size()) fail(ErrorKind::Internal, "gradients do not match the model");
    // The norm, as ModelGradients::squared_norm() sums it, polled: nothing has changed yet.
    auto sum_sq = [this](const std::vector<float> &v) {
        double s = 0.0;
        for (size_t i0 = 0; i0 < v.size(); i0 += kPollElements) {
            const size_t i1 = std::min(v.size(), i0 + kPollElements);
            for (size_t i = i0; i < i1; ++i) s += double(v[i]) * double(v[i]);
            poll(poll_);
        }
        return s;
    };
    double squared = 0.0;
    for (const auto &layer : grads.layers) {
        const double a = sum_sq(layer.w_ih), b = sum_sq(layer.w_hh), c = sum_sq(layer.b_ih), d = sum_sq(layer.b_hh);
        squared += a + b + c + d;
    }
    {
        const double a = sum_sq(grads.dense_w), b = sum_sq(grads.dense_b);
        squared = squared + a + b;
    }
    // No poll from here on: the clipping, the moments and the weights change together. The
    // work is proportional to the model's size, which the caller's memory budget bounds.
    const double norm = std::sqrt(squared);
    if (options_.clip_norm > 0.0f) {
        const double coef = double(options_.clip_norm) / (norm + 1e-6);
        if (coef < 1.0) {
            const float c = float(coef);
            for_each_tensor(grads, [c](std::vector<float> &g) {
                for (auto &x : g) x *= c;
            });
        }
    }

    st.steps += 1;
    const double b1 = options_.beta1, b2 = options_.beta2;
    const double bc1 = 1.0 - std::pow(b1, double(st.steps));
    const double bc2 = 1.0 - std::pow(b2, double(st.steps));
    const float step_size = float(double(options_.learning_rate) / bc1);
    const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
    const float fb1 = options_.beta1, fb2 = options_.beta2, eps = options_.epsilon;

    // Walk weights, gradients and both moments in the same tensor order.
    std::vector<std::vector<float> *> w, g, m, v;
    for_each_tensor(model_, [&](std::vector<float> &x) { w.push_back(&x); });
    for_each_tensor(grads, [&](std::vector<float> &x) { g.push_back(&x); });
    for_each_tensor(st.m, [&](std::vector<float> &x) { m.push_back(&x); });
    for_each_tensor(st.v, [&](std::vector<float> &x) { v.push_back(&x); });
    for (size_t k = 0; k < w.size(); ++k) {
        const size_t n = w[k]->size();
        if (g[k]->size() != n) fail(ErrorKind::Internal, "gradients do not match the model");
        float *wp = w[k]->data();
        const float *gp = g[k]->data();
        float *mp = m[k]->data();
        float *vp = v[k]->data();
        for (size_t i = 0; i < n; ++i) {
            const float gi = gp[i];
            mp[i] = fb1 * mp[i] + (1.0f - fb1) * gi;
            vp[i] = fb2 * vp[i] + (1.0f - fb2) * gi * gi;
            const float denom = std::sqrt(vp[i]) * inv_sqrt_bc2 + eps;
            wp[i] -= step_size * (mp[i] / denom);
        }
    }
    return norm;
}

}  // namespace recsys
