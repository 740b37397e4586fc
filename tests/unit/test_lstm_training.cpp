// Unit tests for the LSTM trainer: parity with the scorer, finite-difference gradient checks,
// learning on a toy problem, determinism and gradient clipping.
#include <cblas.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lstm_forward.h"
#include "lstm_training.h"
#include "model.h"

namespace recsys {
namespace {

// Small deterministic generator for test data (independent of the trainer's).
struct TestRng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    float uniform(float lo, float hi) { return float(lo + (hi - lo) * uniform()); }
    size_t index(size_t n) { return size_t(next() % n); }
};

// A model with P products (step input: P flags, plus P "added" flags when adds is set), one
// dynamic numeric feature with a missing indicator (width 2) when dynamic is set, and, when
// static_vocab > 0, one static categorical feature of width static_vocab + 1.
Model make_model(uint32_t T, uint32_t H, uint32_t P, uint32_t layers, bool adds, bool dynamic,
                 uint32_t static_vocab) {
    Model m;
    m.source = {"public.santander", "ncodpers", "fecha_dato"};
    m.window_months = T;
    m.hidden = H;
    m.include_product_adds = adds;
    for (uint32_t p = 0; p < P; ++p) m.products.push_back("ind_prod_" + std::to_string(p));
    if (dynamic) {
        FeatureSpec f;
        f.column = "renta";
        f.kind = FeatureKind::Numeric;
        f.role = FeatureRole::Dynamic;
        f.missing_indicator = true;
        m.features.push_back(f);
    }
    if (static_vocab > 0) {
        FeatureSpec f;
        f.column = "segmento";
        f.kind = FeatureKind::Categorical;
        f.role = FeatureRole::Static;
        for (uint32_t v = 0; v < static_vocab; ++v) f.vocabulary.push_back("v" + std::to_string(v));
        m.features.push_back(f);
    }
    m.layers.resize(layers);
    m.index();
    initialize_weights(m, 1234);
    m.validate();
    return m;
}

// Scales every weight (a larger spread than the default init makes the gates non-trivial).
void scale_weights(Model &m, float s) {
    auto scale = [s](std::vector<float> &v) {
        for (auto &x : v) x *= s;
    };
    for (auto &l : m.layers) {
        scale(l.w_ih);
        scale(l.w_hh);
        scale(l.b_ih);
        scale(l.b_hh);
    }
    scale(m.dense_w);
    scale(m.dense_b);
}

struct Batch {
    size_t B;
    std::vector<float> steps, statics, labels, mask;
};

Batch random_batch(const Model &m, size_t B, uint64_t seed, float mask_zero_fraction = 0.0f) {
    TestRng rng{seed};
    Batch b;
    b.B = B;
    b.steps.resize(size_t(m.window_months) * B * m.step_width());
    b.statics.resize(B * m.static_width());
    b.labels.resize(B * m.product_count());
    b.mask.resize(B * m.product_count());
    for (auto &x : b.steps) x = rng.uniform(-1.5f, 1.5f);
    for (auto &x : b.statics) x = rng.uniform(-1.0f, 1.0f);
    for (auto &x : b.labels) x = rng.uniform() < 0.4 ? 1.0f : 0.0f;
    for (auto &x : b.mask) x = rng.uniform() < mask_zero_fraction ? 0.0f : 1.0f;
    return b;
}

std::vector<std::vector<float> *> tensors(Model &m) {
    std::vector<std::vector<float> *> out;
    for (auto &l : m.layers) {
        out.push_back(&l.w_ih);
        out.push_back(&l.w_hh);
        out.push_back(&l.b_ih);
        out.push_back(&l.b_hh);
    }
    out.push_back(&m.dense_w);
    out.push_back(&m.dense_b);
    return out;
}

std::vector<std::vector<float> *> tensors(ModelGradients &g) {
    std::vector<std::vector<float> *> out;
    for (auto &l : g.layers) {
        out.push_back(&l.w_ih);
        out.push_back(&l.w_hh);
        out.push_back(&l.b_ih);
        out.push_back(&l.b_hh);
    }
    out.push_back(&g.dense_w);
    out.push_back(&g.dense_b);
    return out;
}

class LstmTrainingTest : public ::testing::Test {
protected:
    // Results are bit-reproducible for a fixed BLAS thread count; pin it to one.
    void SetUp() override { openblas_set_num_threads(1); }
};

// ---------------------------------------------------------------------------------------------

void expect_scores_match_scorer(uint32_t layers, uint32_t static_vocab) {
    Model m = make_model(6, 16, 5, layers, true, true, static_vocab);
    scale_weights(m, 2.0f);
    const size_t B = 13;
    Batch b = random_batch(m, B, 7 + layers);
    LstmForward fwd(m, 32);
    std::vector<float> expected(B * m.product_count());
    fwd.score(b.steps.data(), b.statics.data(), B, expected.data());

    LstmTrainer trainer(m, 32);
    ModelGradients g(m);
    trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g);
    for (size_t i = 0; i < expected.size(); ++i)
        EXPECT_NEAR(trainer.last_scores()[i], expected[i], 1e-6) << "layers " << layers << " entry " << i;
}

TEST_F(LstmTrainingTest, ScoresMatchScorerOneLayer) { expect_scores_match_scorer(1, 3); }
TEST_F(LstmTrainingTest, ScoresMatchScorerTwoLayers) { expect_scores_match_scorer(2, 3); }
TEST_F(LstmTrainingTest, ScoresMatchScorerThreeLayersNoStatics) { expect_scores_match_scorer(3, 0); }

// ---------------------------------------------------------------------------------------------

struct Shape {
    uint32_t T, H, P, layers;
    uint32_t static_vocab;
};

void gradient_check(const Shape &s, uint64_t seed) {
    SCOPED_TRACE("T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) + " layers=" + std::to_string(s.layers) +
                 " statics=" + std::to_string(s.static_vocab));
    Model m = make_model(s.T, s.H, s.P, s.layers, true, true, s.static_vocab);
    initialize_weights(m, seed);
    scale_weights(m, 1.5f);
    const size_t B = 4;
    Batch b = random_batch(m, B, seed * 31 + 1, 0.3f);
    LstmTrainer trainer(m, B);
    ModelGradients grads(m), scratch(m);
    const double loss0 =
        trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, grads);
    ASSERT_GT(loss0, 0.0);
    auto loss_at = [&]() {
        return trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B,
                                        scratch);
    };

    TestRng rng{seed};
    const double h = 1e-3;
    auto ws = tensors(m);
    auto gs = tensors(grads);
    size_t checked = 0, significant = 0;
    double worst_rel = 0.0;
    for (size_t k = 0; k < ws.size(); ++k) {
        std::vector<float> &w = *ws[k];
        for (int n = 0; n < 30; ++n) {
            const size_t i = rng.index(w.size());
            const float orig = w[i];
            const float plus = float(orig + h), minus = float(orig - h);
            w[i] = plus;
            const double lp = loss_at();
            w[i] = minus;
            const double lm = loss_at();
            w[i] = orig;
            const double numeric = (lp - lm) / (double(plus) - double(minus));
            const double analytic = (*gs[k])[i];
            const double abs_err = std::fabs(numeric - analytic);
            const double rel_err = abs_err / std::max(std::fabs(numeric), std::fabs(analytic));
            EXPECT_TRUE(rel_err < 2e-2 || abs_err < 1e-4)
                << "tensor " << k << " index " << i << ": analytic " << analytic << ", numeric " << numeric;
            ++checked;
            if (std::fabs(analytic) > 1e-3) {
                ++significant;
                worst_rel = std::max(worst_rel, rel_err);
            }
        }
    }
    // The check must not pass vacuously: many sampled gradients are well above the noise.
    EXPECT_GT(significant, checked / 4);
    ::testing::Test::RecordProperty("worst_relative_error", std::to_string(worst_rel));
    std::printf("  [gradcheck T=%u H=%u layers=%u statics=%u] %zu checked, %zu significant, worst rel err %.3g\n",
                s.T, s.H, s.layers, s.static_vocab, checked, significant, worst_rel);
}

TEST_F(LstmTrainingTest, GradientCheckOneLayerNoStatics) { gradient_check({5, 6, 3, 1, 0}, 11); }
TEST_F(LstmTrainingTest, GradientCheckOneLayerStatics) { gradient_check({5, 6, 3, 1, 2}, 12); }
TEST_F(LstmTrainingTest, GradientCheckSingleStep) { gradient_check({1, 6, 3, 1, 2}, 13); }
TEST_F(LstmTrainingTest, GradientCheckTwoLayers) { gradient_check({5, 5, 3, 2, 2}, 14); }
TEST_F(LstmTrainingTest, GradientCheckTwoLayersSingleStepNoStatics) { gradient_check({1, 5, 3, 2, 0}, 15); }
TEST_F(LstmTrainingTest, GradientCheckThreeLayers) { gradient_check({4, 4, 2, 3, 1}, 16); }

// Double-precision reference of the loss (exact libm activations), independent of the
// trainer's code: a straightforward per-customer LSTM.
double reference_loss(const Model &m, const Batch &b) {
    const size_t T = m.window_months, H = m.hidden, P = m.product_count(), S = m.static_width(), B = b.B;
    const size_t W = m.step_width(), D = H + S;
    auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
    double loss = 0.0, count = 0.0;
    for (size_t c = 0; c < B; ++c) {
        std::vector<std::vector<double>> seq(T);
        for (size_t t = 0; t < T; ++t)
            seq[t].assign(b.steps.begin() + (t * B + c) * W, b.steps.begin() + (t * B + c + 1) * W);
        for (const LstmLayer &layer : m.layers) {
            const size_t in = seq[0].size();
            std::vector<double> h(H, 0.0), cell(H, 0.0), gates(4 * H);
            for (size_t t = 0; t < T; ++t) {
                for (size_t r = 0; r < 4 * H; ++r) {
                    double a = double(layer.b_ih[r]) + double(layer.b_hh[r]);
                    for (size_t k = 0; k < in; ++k) a += double(layer.w_ih[r * in + k]) * seq[t][k];
                    for (size_t k = 0; k < H; ++k) a += double(layer.w_hh[r * H + k]) * h[k];
                    gates[r] = a;
                }
                for (size_t j = 0; j < H; ++j) {
                    const double i = sig(gates[j]), f = sig(gates[H + j]), g = std::tanh(gates[2 * H + j]),
                                 o = sig(gates[3 * H + j]);
                    cell[j] = f * cell[j] + i * g;
                    h[j] = o * std::tanh(cell[j]);
                }
                seq[t] = h;
            }
        }
        std::vector<double> x(seq[T - 1]);
        for (size_t s = 0; s < S; ++s) x.push_back(b.statics[c * S + s]);
        for (size_t p = 0; p < P; ++p) {
            const float mk = b.mask[c * P + p];
            if (mk == 0.0f) continue;
            double z = m.dense_b[p];
            for (size_t k = 0; k < D; ++k) z += double(m.dense_w[p * D + k]) * x[k];
            const double y = b.labels[c * P + p];
            loss += mk * (std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z))));
            count += mk;
        }
    }
    return count > 0 ? loss / count : 0.0;
}

// Analytic float gradients against central differences (step 2^-10) of the double reference:
// no float rounding enters the numerical side, so this measures the parity that matters for
// matching torch autograd, and it is much tighter than the float check above.
void reference_gradient_check(const Shape &s, uint64_t seed) {
    SCOPED_TRACE("T=" + std::to_string(s.T) + " layers=" + std::to_string(s.layers));
    Model m = make_model(s.T, s.H, s.P, s.layers, true, true, s.static_vocab);
    initialize_weights(m, seed);
    scale_weights(m, 1.5f);
    const size_t B = 5;
    Batch b = random_batch(m, B, seed + 5, 0.25f);
    LstmTrainer trainer(m, B);
    ModelGradients grads(m);
    const double loss =
        trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, grads);
    EXPECT_NEAR(loss, reference_loss(m, b), 1e-6);

    auto ws = tensors(m);
    auto gs = tensors(grads);
    double worst = 0.0, worst_rel = 0.0, scale = 0.0;
    for (auto *g : gs)
        for (float x : *g) scale = std::max(scale, double(std::fabs(x)));
    for (size_t k = 0; k < ws.size(); ++k) {
        std::vector<float> &w = *ws[k];
        for (size_t i = 0; i < w.size(); ++i) {
            const float orig = w[i];
            // The difference quotient uses the float-rounded perturbed values, so it is exact
            // for the double reference up to its O(h^2) truncation (about 1e-7 here).
            const float plus = orig + 1.0f / 1024.0f, minus = orig - 1.0f / 1024.0f;
            w[i] = plus;
            const double lp = reference_loss(m, b);
            w[i] = minus;
            const double lm = reference_loss(m, b);
            w[i] = orig;
            const double numeric = (lp - lm) / (double(plus) - double(minus));
            const double analytic = (*gs[k])[i];
            // Relative to the largest gradient: the absolute error allowed is 1e-4 of it.
            const double err = std::fabs(numeric - analytic) / scale;
            worst = std::max(worst, err);
            if (std::fabs(numeric) > 1e-2 * scale)
                worst_rel = std::max(worst_rel, std::fabs(numeric - analytic) / std::fabs(numeric));
            EXPECT_LT(err, 1e-4) << "tensor " << k << " index " << i << ": analytic " << analytic << ", numeric "
                                 << numeric;
        }
    }
    EXPECT_LT(worst_rel, 1e-4);  // entrywise, for gradients above 1% of the largest
    std::printf("  [reference T=%u layers=%u] loss %.9f, worst |analytic - numeric| / max|g| = %.3g, "
                "worst entrywise relative error (|g| > 1%% of max) = %.3g\n",
                s.T, s.layers, loss, worst, worst_rel);
}

TEST_F(LstmTrainingTest, GradientMatchesDoubleReferenceOneLayer) { reference_gradient_check({5, 6, 3, 1, 2}, 21); }
TEST_F(LstmTrainingTest, GradientMatchesDoubleReferenceTwoLayers) { reference_gradient_check({4, 5, 3, 2, 2}, 22); }

// The weight and bias gradients are summed chunk by chunk of steps during the backward pass
// (about 2^18 gate-gradient floats a chunk). At H = 32 a batch of 1024 takes chunks of 2 steps
// (of T = 5: two full chunks and a partial one), a batch of 256 one chunk of all 5 steps. The
// mean loss is linear in the examples, so the big batch's gradients must equal the sub-batches'
// weighted by their masked-entry counts, whatever the chunking.
TEST_F(LstmTrainingTest, ChunkedWeightGradientsMatchSubBatches) {
    Model m = make_model(5, 32, 4, 2, true, true, 2);
    initialize_weights(m, 31);
    scale_weights(m, 1.5f);
    const size_t B = 1024, parts = 4, Bp = B / parts;
    Batch b = random_batch(m, B, 32, 0.25f);
    const size_t T = m.window_months, W = m.step_width(), S = m.static_width(), P = m.product_count();
    LstmTrainer trainer(m, B);
    ModelGradients full(m), part(m), combined(m);
    const double loss = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(),
                                                 B, full);
    double count = 0.0;
    for (float x : b.mask) count += x;
    ASSERT_GT(count, 0.0);
    auto cs = tensors(combined);
    double combined_loss = 0.0;
    for (size_t k = 0; k < parts; ++k) {
        std::vector<float> steps(T * Bp * W);
        for (size_t t = 0; t < T; ++t)
            std::copy(b.steps.begin() + (t * B + k * Bp) * W, b.steps.begin() + (t * B + (k + 1) * Bp) * W,
                      steps.begin() + t * Bp * W);
        const float *statics = b.statics.data() + k * Bp * S;
        const float *labels = b.labels.data() + k * Bp * P, *mask = b.mask.data() + k * Bp * P;
        double part_count = 0.0;
        for (size_t i = 0; i < Bp * P; ++i) part_count += mask[i];
        const double l = trainer.forward_backward(steps.data(), statics, labels, mask, Bp, part);
        const double weight = part_count / count;
        combined_loss += weight * l;
        auto ps = tensors(part);
        for (size_t t = 0; t < cs.size(); ++t)
            for (size_t i = 0; i < cs[t]->size(); ++i) (*cs[t])[i] += float(weight * (*ps[t])[i]);
    }
    EXPECT_NEAR(loss, combined_loss, 1e-6);
    auto fs = tensors(full);
    double scale = 0.0, worst = 0.0;
    for (size_t t = 0; t < fs.size(); ++t)
        for (size_t i = 0; i < fs[t]->size(); ++i) {
            scale = std::max(scale, double(std::fabs((*fs[t])[i])));
            worst = std::max(worst, double(std::fabs((*fs[t])[i] - (*cs[t])[i])));
        }
    ASSERT_GT(scale, 0.0);
    EXPECT_LT(worst / scale, 1e-5) << "largest gradient " << scale << ", largest difference " << worst;
}

TEST_F(LstmTrainingTest, MaskedEntriesAreExcluded) {
    Model m = make_model(4, 8, 3, 2, true, true, 2);
    const size_t B = 6;
    Batch b = random_batch(m, B, 99, 0.4f);
    LstmTrainer trainer(m, B);
    ModelGradients g1(m), g2(m);
    const double l1 = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g1);
    // Flipping the labels of masked-out entries changes nothing.
    size_t masked = 0;
    for (size_t i = 0; i < b.mask.size(); ++i)
        if (b.mask[i] == 0.0f) {
            b.labels[i] = 1.0f - b.labels[i];
            ++masked;
        }
    ASSERT_GT(masked, 0u);
    const double l2 = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g2);
    EXPECT_EQ(l1, l2);
    auto t1 = tensors(g1), t2 = tensors(g2);
    for (size_t k = 0; k < t1.size(); ++k) EXPECT_EQ(*t1[k], *t2[k]) << "tensor " << k;

    // The loss is the mean over unmasked entries, computed from the scores.
    const float *s = trainer.last_scores();
    double expected = 0.0, count = 0.0;
    for (size_t i = 0; i < b.mask.size(); ++i) {
        if (b.mask[i] == 0.0f) continue;
        const double p = s[i];
        expected += -(b.labels[i] * std::log(p) + (1 - b.labels[i]) * std::log(1 - p));
        count += 1;
    }
    EXPECT_NEAR(l1, expected / count, 1e-5);

    // No unmasked entry: zero loss and zero gradients.
    std::fill(b.mask.begin(), b.mask.end(), 0.0f);
    const double l3 = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g2);
    EXPECT_EQ(l3, 0.0);
    EXPECT_EQ(g2.squared_norm(), 0.0);
}

// ---------------------------------------------------------------------------------------------

// Toy problem: product 0 is added when the dynamic feature of the last month is positive,
// product 1 when the static category is v0.
Batch learnable_batch(const Model &m, size_t B, uint64_t seed) {
    TestRng rng{seed};
    Batch b;
    b.B = B;
    const size_t T = m.window_months, W = m.step_width(), S = m.static_width(), P = m.product_count();
    b.steps.assign(T * B * W, 0.0f);
    b.statics.assign(B * S, 0.0f);
    b.labels.assign(B * P, 0.0f);
    b.mask.assign(B * P, 1.0f);
    const size_t feature_offset = W - 2;  // dynamic numeric value, then its missing indicator
    for (size_t i = 0; i < B; ++i) {
        float last = 0.0f;
        for (size_t t = 0; t < T; ++t) {
            float *x = b.steps.data() + (t * B + i) * W;
            for (size_t p = 0; p < 2 * P; ++p) x[p] = rng.uniform() < 0.3 ? 1.0f : 0.0f;
            last = x[feature_offset] = rng.uniform(-1.0f, 1.0f);
        }
        const size_t cat = rng.index(S);
        b.statics[i * S + cat] = 1.0f;
        b.labels[i * P + 0] = last > 0.0f ? 1.0f : 0.0f;
        b.labels[i * P + 1] = cat == 0 ? 1.0f : 0.0f;
    }
    return b;
}

TEST_F(LstmTrainingTest, LossDecreasesOnLearnableProblem) {
    Model m = make_model(4, 16, 2, 1, true, true, 2);
    const size_t B = 64;
    Batch b = learnable_batch(m, B, 5);
    AdamOptions opt;
    opt.learning_rate = 0.02f;
    LstmTrainer trainer(m, B, opt);
    ModelGradients g(m);
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 200; ++step) {
        last = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g);
        if (step == 0) first = last;
        ASSERT_TRUE(std::isfinite(last));
        trainer.adam_step(g);
    }
    EXPECT_EQ(trainer.steps_taken(), 200u);
    std::printf("  [toy problem] loss %.4f -> %.4f after 200 Adam steps\n", first, last);
    EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
}

TEST_F(LstmTrainingTest, DeterministicForSameSeed) {
    auto train = [](uint64_t seed) {
        Model m = make_model(5, 12, 4, 2, true, true, 3);
        initialize_weights(m, seed);
        LstmTrainer trainer(m, 32);
        ModelGradients g(m);
        for (int step = 0; step < 10; ++step) {
            Batch b = random_batch(m, 32 - step, 1000 + step, 0.2f);
            trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), b.B, g);
            trainer.adam_step(g);
        }
        return m;
    };
    Model a = train(42), b = train(42), c = train(43);
    auto ta = tensors(a), tb = tensors(b), tc = tensors(c);
    bool any_differs = false;
    for (size_t k = 0; k < ta.size(); ++k) {
        ASSERT_EQ(ta[k]->size(), tb[k]->size());
        EXPECT_EQ(0, std::memcmp(ta[k]->data(), tb[k]->data(), ta[k]->size() * sizeof(float))) << "tensor " << k;
        if (*ta[k] != *tc[k]) any_differs = true;
    }
    EXPECT_TRUE(any_differs);
}

TEST_F(LstmTrainingTest, InitializationBoundsAndSeeds) {
    Model m = make_model(3, 25, 4, 2, true, true, 5);  // dense fan-in 25 + 6 = 31
    const double k = 1.0 / 5.0, kd = 1.0 / std::sqrt(31.0);
    for (auto &l : m.layers)
        for (auto *v : {&l.w_ih, &l.w_hh, &l.b_ih, &l.b_hh})
            for (float x : *v) EXPECT_TRUE(x >= -k && x <= k) << x;
    double max_abs = 0.0;
    for (float x : m.dense_w) {
        EXPECT_TRUE(x >= -kd && x <= kd) << x;
        max_abs = std::max(max_abs, double(std::fabs(x)));
    }
    EXPECT_GT(max_abs, 0.8 * kd);  // the full range is used
    Model again = make_model(3, 25, 4, 2, true, true, 5);
    EXPECT_EQ(m.layers[1].w_hh, again.layers[1].w_hh);
    initialize_weights(again, 1235);
    EXPECT_NE(m.layers[1].w_hh, again.layers[1].w_hh);
}

// ---------------------------------------------------------------------------------------------

TEST_F(LstmTrainingTest, ClippingScalesGradientBeforeAdam) {
    Model m = make_model(4, 8, 3, 1, true, true, 2);
    scale_weights(m, 2.0f);
    const size_t B = 8;
    Batch b = random_batch(m, B, 3);
    AdamOptions opt;
    opt.learning_rate = 1e-2f;
    opt.clip_norm = 1e-3f;
    LstmTrainer trainer(m, B, opt);
    ModelGradients g(m);
    trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g);
    const ModelGradients unclipped = g;
    const double norm = std::sqrt(g.squared_norm());
    ASSERT_GT(norm, 10 * opt.clip_norm);
    const Model before = m;

    const double returned = trainer.adam_step(g);
    EXPECT_NEAR(returned, norm, 1e-6 * norm);  // the norm before clipping
    EXPECT_NEAR(std::sqrt(g.squared_norm()), opt.clip_norm, 1e-3 * opt.clip_norm);

    // After one step from zero moments, each weight moves by lr * g_c / (|g_c| + eps), where
    // g_c is the clipped gradient: about lr * sign(g) except where g_c is comparable to eps.
    const double coef = opt.clip_norm / (norm + 1e-6);
    Model before_copy = before;
    ModelGradients unclipped_copy = unclipped;
    auto wb = tensors(before_copy), wa = tensors(m), gu = tensors(unclipped_copy);
    size_t moved_full = 0, total = 0;
    for (size_t k = 0; k < wa.size(); ++k)
        for (size_t i = 0; i < wa[k]->size(); ++i) {
            const double gc = (*gu[k])[i] * coef;
            const double expected = -opt.learning_rate * gc / (std::fabs(gc) + opt.epsilon);
            const double moved = double((*wa[k])[i]) - double((*wb[k])[i]);
            EXPECT_NEAR(moved, expected, 1e-3 * opt.learning_rate + 1e-6 * std::fabs((*wb[k])[i]))
                << "tensor " << k << " index " << i;
            if (std::fabs(gc) > 100 * opt.epsilon) {
                ++total;
                if (std::fabs(std::fabs(moved) - opt.learning_rate) < 2e-2 * opt.learning_rate) ++moved_full;
            }
        }
    EXPECT_GT(total, 0u);
    EXPECT_EQ(moved_full, total);
}

TEST_F(LstmTrainingTest, NoClippingBelowThreshold) {
    Model m = make_model(3, 6, 2, 1, false, true, 0);
    const size_t B = 5;
    Batch b = random_batch(m, B, 8);
    AdamOptions opt;
    opt.clip_norm = 1e6f;
    LstmTrainer trainer(m, B, opt);
    ModelGradients g(m);
    trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, g);
    const ModelGradients copy = g;
    const double norm = trainer.adam_step(g);
    EXPECT_NEAR(norm, std::sqrt(copy.squared_norm()), 1e-12);
    EXPECT_EQ(g.layers[0].w_ih, copy.layers[0].w_ih);
    EXPECT_EQ(g.dense_w, copy.dense_w);
}

}  // namespace
}  // namespace recsys
