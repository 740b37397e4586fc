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
