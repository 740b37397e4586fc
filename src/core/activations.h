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
// Exact libm versions, for tests and as the reference.
void sigmoid_reference(float *x, size_t n);
void tanh_reference(float *x, size_t n);

}  // namespace recsys
