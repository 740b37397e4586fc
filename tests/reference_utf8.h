// A UTF-8 decoder written straight from the definition (RFC 3629), shared by the unit tests and
// the fuzz targets to check recsys::is_valid_utf8, which is table-driven: decode each sequence
// by its lead byte's bit pattern, then refuse overlong forms, surrogates and code points above
// U+10FFFF. Deliberately simple and independent of the code it checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace recsys_test {

inline bool reference_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t b = uint8_t(s[i]);
        size_t n;
        uint32_t cp;
        if (b < 0x80) {
            ++i;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            const uint8_t c = uint8_t(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}

}  // namespace recsys_test
