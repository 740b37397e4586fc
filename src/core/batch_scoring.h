// The batch scoring paths' compute (recommend_many, score_all and the refreshes built on it,
// full_states behind rebuild_states): a group of customers of a HistoryBatch, each at its
// latest month, encoded and scored in one GEMM batch with buffers sized for the model's
// window.
//
// A from-start model's customer may have more months since the start month than the model's
// window (a model kept in production longer than the span it was trained on). The recurrence
// has no window, so such a batch runs in parts of T steps (FeatureEncoder::encode_part), each
// customer's state carried from one part to the next: the scores are those of the whole
// sequence, as the online path computes them (StateContinuation; docs/online-scoring.md),
// and the buffers stay the window's size. A batch whose sequences all fit the window takes
// the single encode and forward pass it always took.
#pragma once

#include <cstddef>
#include <cstdint>

#include "batch_memory.h"
#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
#include "model.h"

namespace recsys {

// Scores customers [first, first + count) of `history` (count <= the buffers' batch) into
// buf.scores and buf.held (count x P) and buf.end_month; encoder, forward and buf belong to
// `model`. states (from-start models only; null for none): count x state_size() floats that
// receive each customer's state after its last month, from which the scores are computed.
// Returns the longest sequence's number of steps (months from the start month; the window for
// a sliding-window model): more than the window means the batch ran in parts. The encoder's
// and the forward pass's exceptions pass through (the poll's included).
uint32_t score_batch(const Model &model, const FeatureEncoder &encoder, LstmForward &forward, EncodedBatch &buf,
                     const HistoryBatch &history, size_t first, size_t count, float *states = nullptr);

}  // namespace recsys
