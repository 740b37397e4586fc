// Shared pieces of the libFuzzer targets (tests/run_fuzz.sh builds and runs them).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "json_check.h"
#include "sha256.h"

namespace fuzzcheck {

// An oracle was violated: print why and abort, which libFuzzer reports as a crash and saves
// the input.
[[noreturn]] inline void oracle_failed(const std::string &what) {
    std::fprintf(stderr, "ORACLE FAILED: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

// The input with its total-length field and trailing SHA-256 recomputed (the last 32 bytes
// stand for the checksum), so that mutations reach the body parser instead of failing the
// checksum. Inputs too short to hold a header and a checksum come back unchanged.
inline std::vector<uint8_t> resealed(const uint8_t *data, size_t size) {
    std::vector<uint8_t> bytes(data, data + size);
    if (size < 20 + 32) return bytes;
    const uint64_t total = size;
    for (int i = 0; i < 8; ++i) bytes[12 + i] = uint8_t(total >> (8 * i));
    const recsys::Sha256Digest d = recsys::sha256(bytes.data(), size - 32);
    std::memcpy(bytes.data() + size - 32, d.data(), 32);
    return bytes;
}

// What parse_model() may throw for bad bytes: CorruptModel or InvalidText, with a message
// (and detail and hint) that PostgreSQL can print: non-empty, valid UTF-8.
inline void check_parse_error(const recsys::Error &e) {
    if (e.kind() != recsys::ErrorKind::CorruptModel && e.kind() != recsys::ErrorKind::InvalidText)
        oracle_failed(std::string("parse_model threw an unexpected error kind: ") + e.what());
    if (std::strlen(e.what()) == 0) oracle_failed("empty error message");
    if (!reference_utf8(e.what()) || !reference_utf8(e.detail()) || !reference_utf8(e.hint()))
        oracle_failed(std::string("error message is not valid UTF-8: ") + e.what());
}

}  // namespace fuzzcheck
