// The versioned binary model format (docs/model-format.md).
//
// Layout, all integers and floats little-endian:
//   magic "RECSYSLM" | u32 format version | u64 total length | body ... | SHA-256 of all
//   preceding bytes (32 bytes).
// The parser checks the length and the checksum before reading the body, and bounds every
// count and size against the limits in model.h before allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model.h"

namespace recsys {

constexpr char kModelMagic[8] = {'R', 'E', 'C', 'S', 'Y', 'S', 'L', 'M'};
// Version 1: float32 models. Version 2 adds one precision byte (WeightPrecision) after the
// flags; it is written only for a reduced-precision model, so a float32 model's bytes (and
// checksum) are the same as before, and version 1 bytes load as float32.
constexpr uint32_t kModelFormatVersion = 2;
constexpr uint32_t kModelFormatVersionFp32 = 1;
constexpr size_t kModelMaxBytes = size_t(1) << 30;  // 1 GiB, the largest bytea

std::vector<uint8_t> serialize_model(const Model &model);

// Parses and validates; throws recsys::Error(CorruptModel) with a precise message.
Model parse_model(const uint8_t *data, size_t length);

}  // namespace recsys
