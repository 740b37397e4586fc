// Little-endian byte writer and bounds-checked reader for the model format.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace recsys {

class ByteWriter {
public:
    void bytes(const void *p, size_t n) {
        const auto *b = static_cast<const uint8_t *>(p);
        out_.insert(out_.end(), b, b + n);
    }
    void u8(uint8_t v) { out_.push_back(v); }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) out_.push_back(uint8_t(v >> (8 * i)));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) out_.push_back(uint8_t(v >> (8 * i)));
    }
    void f32(float v) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        u32(bits);
    }
    void floats(const std::vector<float> &v) {
        for (float x : v) f32(x);
    }
    void str(const std::string &s) {
        u32(static_cast<uint32_t>(s.size()));
        bytes(s.data(), s.size());
    }
    std::vector<uint8_t> &buffer() { return out_; }

private:
    std::vector<uint8_t> out_;
};

class ByteReader {
public:
    ByteReader(const uint8_t *data, size_t length) : p_(data), end_(data + length), begin_(data) {}

    size_t offset() const { return size_t(p_ - begin_); }
    size_t remaining() const { return size_t(end_ - p_); }

    void need(size_t n, const char *what) const {
        if (remaining() < n)
            fail(ErrorKind::CorruptModel, "model is truncated",
                 "Reading " + std::string(what) + " at byte " + std::to_string(offset()) + " needs " +
                     std::to_string(n) + " bytes, " + std::to_string(remaining()) + " remain.");
    }
    uint8_t u8(const char *what) {
        need(1, what);
        return *p_++;
    }
    uint32_t u32(const char *what) {
        need(4, what);
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint32_t(p_[i]) << (8 * i);
        p_ += 4;
        return v;
    }
    uint64_t u64(const char *what) {
        need(8, what);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(p_[i]) << (8 * i);
        p_ += 8;
        return v;
    }
    float f32(const char *what) {
        uint32_t bits = u32(what);
        float v;
        std::memcpy(&v, &bits, 4);
        return v;
    }
    // Reads n floats after checking that the bytes are there, so a huge n cannot allocate.
    std::vector<float> floats(size_t n, const char *what) {
        if (n > remaining() / 4) need(n * 4 > n ? n * 4 : SIZE_MAX, what);
        std::vector<float> v(n);
        for (size_t i = 0; i < n; ++i) {
            uint32_t bits = 0;
            for (int b = 0; b < 4; ++b) bits |= uint32_t(p_[b]) << (8 * b);
            std::memcpy(&v[i], &bits, 4);
            p_ += 4;
        }
        return v;
    }
    std::string str(uint32_t max_length, const char *what) {
        uint32_t n = u32(what);
        if (n > max_length)
            fail(ErrorKind::CorruptModel, "model is inconsistent",
                 std::string(what) + " is " + std::to_string(n) + " bytes long, the limit is " +
                     std::to_string(max_length) + ".");
        need(n, what);
        std::string s(reinterpret_cast<const char *>(p_), n);
        p_ += n;
        return s;
    }

private:
    const uint8_t *p_;
    const uint8_t *end_;
    const uint8_t *begin_;
};

}  // namespace recsys
