// Vectorisable sigmoid and tanh over float arrays.
//
// The scalar libm expf/tanhf would cost about three times the GEMMs of the LSTM; these
// loops use a branch-free exp (Cody-Waite range reduction and a degree-6 polynomial,
// about 2 ulp) that GCC vectorises, and stay within 1e-6 of the exact functions.
#pragma once

#include <cstddef>

namespace recsys {

void sigmoid_inplace(float *x, size_t n);
void tanh_inplace(float *x, size_t n);
// One LSTM cell step for one customer: gates holds the 4H pre-activations in PyTorch order
// (input, forget, cell, output); updates c and writes h = o * tanh(c), in one pass.
void lstm_cell_update(const float *gates, float *c, float *h, size_t hidden);
// The same step for training, keeping what backpropagation reads: activates gates in place
// (4H, [i | f | g | o]) and writes c = f * c_prev + i * g (c_prev null: the first step, c = 0),
// tanh_c = tanh(c) and h = o * tanh_c. One pass; each value is computed by the same expression
// as sigmoid_inplace / tanh_inplace and the scorer's cell, so the bits equal theirs.
void lstm_cell_forward_cached(float *gates, const float *c_prev, float *c, float *tanh_c, float *h, size_t hidden);
// Backward of lstm_cell_forward_cached for one customer at one step: from the cached activated
// gates, tanh_c and c_prev (null: the first step), the gradient of h (dh, plus `above`, the layer
// above's input gradient, when not null) and dc (of c, updated in place to the gradient of
// c_prev), writes the gate pre-activation gradients dgates (4H).
void lstm_cell_backward(const float *gates, const float *tanh_c, const float *c_prev, const float *above,
                        const float *dh, float *dc, float *dgates, size_t hidden);
// acc[j] += rows[r * cols + j] in double, for r = 0 .. n_rows-1 in order (the bias gradients'
// column sums; here for the vector clones, which the training step's own file is built without).
void add_rows_as_double(double *acc, const float *rows, size_t n_rows, size_t cols);
// Exact libm versions, for tests and as the reference.
void sigmoid_reference(float *x, size_t n);
void tanh_reference(float *x, size_t n);

}  // namespace recsys
