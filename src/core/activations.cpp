#include "activations.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "vector_clones.h"

namespace recsys {

namespace {

// exp(x) for x in [-88, 88]: x = n*ln2 + r with |r| <= ln2/2, exp(r) by a degree-6
// polynomial (Cephes expf coefficients), 2^n assembled in the exponent bits. Branch-free so
// that the loops below vectorise.
inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : x;  // two plain selects: a nested one defeats if-conversion
    x = x > 88.0f ? 88.0f : x;
    // Round to nearest by the 1.5 * 2^23 trick: std::nearbyint is a libm call without
    // SSE4.1 and would stop the loops from vectorising.
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// tanh(x) = 1 - 2 / (exp(2x) + 1): stable for large |x| (tends to +-1), and for small |x|
// the absolute error stays near float epsilon, which is what the 1e-5 parity needs.
inline float fast_tanh(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }

}  // namespace

// Each hot loop below carries RECSYS_VECTOR_CLONES (vector_clones.h).

RECSYS_VECTOR_CLONES
void lstm_cell_update(const float *gates, float *c, float *h, size_t hidden) {
    const float *gi = gates, *gf = gates + hidden, *gg = gates + 2 * hidden, *go = gates + 3 * hidden;
    for (size_t j = 0; j < hidden; ++j) {
        const float cell = fast_sigmoid(gf[j]) * c[j] + fast_sigmoid(gi[j]) * fast_tanh(gg[j]);
        c[j] = cell;
        h[j] = fast_sigmoid(go[j]) * fast_tanh(cell);
    }
}

RECSYS_VECTOR_CLONES
void lstm_cell_forward_cached(float *__restrict gates, const float *__restrict c_prev, float *__restrict c,
                              float *__restrict tanh_c, float *__restrict h, size_t hidden) {
    float *gi = gates, *gf = gates + hidden, *gg = gates + 2 * hidden, *go = gates + 3 * hidden;
    if (c_prev) {
        for (size_t j = 0; j < hidden; ++j) {
            const float i = fast_sigmoid(gi[j]), f = fast_sigmoid(gf[j]), g = fast_tanh(gg[j]), o = fast_sigmoid(go[j]);
            gi[j] = i, gf[j] = f, gg[j] = g, go[j] = o;
            const float cell = f * c_prev[j] + i * g;
            const float tc = fast_tanh(cell);
            c[j] = cell, tanh_c[j] = tc, h[j] = tc * o;
        }
    } else {
        for (size_t j = 0; j < hidden; ++j) {
            const float i = fast_sigmoid(gi[j]), f = fast_sigmoid(gf[j]), g = fast_tanh(gg[j]), o = fast_sigmoid(go[j]);
            gi[j] = i, gf[j] = f, gg[j] = g, go[j] = o;
            const float cell = f * 0.0f + i * g;  // the scorer's expression with c = 0
            const float tc = fast_tanh(cell);
            c[j] = cell, tanh_c[j] = tc, h[j] = tc * o;
        }
    }
}

namespace {

// The loop of lstm_cell_backward, one instantiation per case so that each has no branch and
// vectorises (the loop with both conditions inside ran scalar). Inlined into every clone.
template <bool kAbove, bool kPrevCell>
inline __attribute__((always_inline)) void cell_backward(size_t H, const float *__restrict gb,
                                                         const float *__restrict tc, const float *__restrict cp,
                                                         const float *__restrict above, const float *__restrict dh,
                                                         float *__restrict dc, float *__restrict dgb) {
    for (size_t j = 0; j < H; ++j) {
        const float hgrad = kAbove ? dh[j] + above[j] : dh[j];
        const float ig = gb[j], fg = gb[H + j], gg = gb[2 * H + j], og = gb[3 * H + j];
        const float tcj = tc[j];
        const float dcj = dc[j] + hgrad * og * (1.0f - tcj * tcj);
        const float cpj = kPrevCell ? cp[j] : 0.0f;
        dgb[j] = dcj * gg * ig * (1.0f - ig);
        dgb[H + j] = dcj * cpj * fg * (1.0f - fg);
        dgb[2 * H + j] = dcj * ig * (1.0f - gg * gg);
        dgb[3 * H + j] = hgrad * tcj * og * (1.0f - og);
        dc[j] = dcj * fg;
    }
}

}  // namespace

// Compiled with the clones below: the rest of the training step is built for baseline x86-64,
// where this loop ran 4 floats wide without FMA.
RECSYS_VECTOR_CLONES
void lstm_cell_backward(const float *gates, const float *tanh_c, const float *c_prev, const float *above,
                        const float *dh, float *dc, float *dgates, size_t hidden) {
    if (above && c_prev)
        cell_backward<true, true>(hidden, gates, tanh_c, c_prev, above, dh, dc, dgates);
    else if (above)
        cell_backward<true, false>(hidden, gates, tanh_c, c_prev, above, dh, dc, dgates);
    else if (c_prev)
        cell_backward<false, true>(hidden, gates, tanh_c, c_prev, above, dh, dc, dgates);
    else
        cell_backward<false, false>(hidden, gates, tanh_c, c_prev, above, dh, dc, dgates);
}

RECSYS_VECTOR_CLONES
void add_rows_as_double(double *__restrict acc, const float *__restrict rows, size_t n_rows, size_t cols) {
    for (size_t r = 0; r < n_rows; ++r) {
        const float *row = rows + r * cols;
        for (size_t j = 0; j < cols; ++j) acc[j] += double(row[j]);
    }
}

RECSYS_VECTOR_CLONES
void sigmoid_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = fast_sigmoid(x[i]);
}

RECSYS_VECTOR_CLONES
void tanh_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = fast_tanh(x[i]);
}

void sigmoid_reference(float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void tanh_reference(float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}

}  // namespace recsys
