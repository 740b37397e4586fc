// SHA-256 (FIPS 180-4), used for the model file's trailing checksum.
// Kept in the core so that model files can be validated without PostgreSQL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace recsys {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(const uint8_t *data, size_t length);

std::string to_hex(const Sha256Digest &digest);

}  // namespace recsys
