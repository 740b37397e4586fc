#include "model_text.h"

#include <cstdio>

#include "errors.h"

namespace recsys {

namespace {

// Validates one UTF-8 sequence starting at s[i] (a byte >= 0x80). Returns its length, or 0
// with *reason set when it is malformed (table 3-7 of the Unicode standard, RFC 3629).
size_t utf8_sequence(std::string_view s, size_t i, const char **reason) {
    const auto at = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t b0 = at(i);
    size_t length;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 < 0xC0) {
        *reason = "is a continuation byte without a lead byte";
        return 0;
    } else if (b0 < 0xC2) {
        *reason = "starts an overlong encoding";
        return 0;
    } else if (b0 < 0xE0) {
        length = 2;
    } else if (b0 < 0xF0) {
        length = 3;
        if (b0 == 0xE0) lo = 0xA0;  // E0 80..9F would be overlong
        if (b0 == 0xED) hi = 0x9F;  // ED A0..BF would be a UTF-16 surrogate
    } else if (b0 < 0xF5) {
        length = 4;
        if (b0 == 0xF0) lo = 0x90;  // F0 80..8F would be overlong
        if (b0 == 0xF4) hi = 0x8F;  // F4 90.. would be above U+10FFFF
    } else {
        *reason = b0 < 0xF8 ? "starts a code point above U+10FFFF" : "never occurs in UTF-8";
        return 0;
    }
    if (i + 1 >= s.size()) {
        *reason = "starts a sequence cut short by the end of the string";
        return 0;
    }
    const uint8_t b1 = at(i + 1);
    if (b1 < lo || b1 > hi) {
        if (b1 >= 0x80 && b1 <= 0xBF) {
            if (b0 == 0xE0 || b0 == 0xF0)
                *reason = "starts an overlong encoding";
            else if (b0 == 0xED)
                *reason = "starts a UTF-16 surrogate (U+D800 to U+DFFF)";
            else
                *reason = "starts a code point above U+10FFFF";
        } else {
            *reason = "starts a sequence without enough continuation bytes";
        }
        return 0;
    }
    for (size_t k = 2; k < length; ++k) {
        if (i + k >= s.size()) {
            *reason = "starts a sequence cut short by the end of the string";
            return 0;
        }
        const uint8_t b = at(i + k);
        if (b < 0x80 || b > 0xBF) {
            *reason = "starts a sequence without enough continuation bytes";
            return 0;
        }
    }
    return length;
}

// Shared scan: the first defect, with control characters counted as defects or not.
bool scan(std::string_view s, bool refuse_controls, TextDefect *defect) {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t b = static_cast<uint8_t>(s[i]);
        if (b < 0x80) {
            if (refuse_controls && b < 0x20) {
                if (defect) *defect = TextDefect{i, b, true, nullptr};
                return false;
            }
            ++i;
            continue;
        }
        const char *reason = nullptr;
        const size_t n = utf8_sequence(s, i, &reason);
        if (n == 0) {
            if (defect) *defect = TextDefect{i, b, false, reason};
            return false;
        }
        i += n;
    }
    return true;
}

}  // namespace

bool is_valid_utf8(std::string_view s) { return scan(s, false, nullptr); }

bool is_valid_text(std::string_view s, TextDefect *defect) { return scan(s, true, defect); }

void check_text(std::string_view s, const std::string &what) {
    TextDefect d;
    if (is_valid_text(s, &d)) return;
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", unsigned(d.byte));
    const std::string rule =
        " Model strings must be UTF-8 (no overlong forms, surrogates or code points above U+10FFFF) "
        "without control characters.";
    if (d.control) {
        char code[8];
        std::snprintf(code, sizeof code, "U+%04X", unsigned(d.byte));
        fail(ErrorKind::InvalidText, what + (d.byte == 0 ? " contains a NUL byte" : " contains a control character"),
             "Byte " + std::to_string(d.offset) + " of the string is " + code + "." + rule);
    }
    fail(ErrorKind::InvalidText, what + " is not valid UTF-8",
         "Byte " + std::to_string(d.offset) + " of the string (" + byte + ") " + d.reason + "." + rule);
}

void check_model_text(const Model &m) {
    check_text(m.source.relation, "source relation");
    check_text(m.source.id_column, "id column");
    check_text(m.source.month_column, "month column");
    // The label is built only for a string that fails (a vocabulary has up to 65536 entries).
    for (size_t i = 0; i < m.products.size(); ++i)
        if (!is_valid_text(m.products[i])) check_text(m.products[i], "product name " + std::to_string(i));
    for (size_t i = 0; i < m.features.size(); ++i) {
        const FeatureSpec &f = m.features[i];
        if (!is_valid_text(f.column)) check_text(f.column, "column name of feature " + std::to_string(i));
        // The column has passed, so the messages below can quote it.
        for (size_t v = 0; v < f.vocabulary.size(); ++v)
            if (!is_valid_text(f.vocabulary[v]))
                check_text(f.vocabulary[v],
                           "vocabulary entry " + std::to_string(v) + " of feature \"" + f.column + "\"");
    }
}

}  // namespace recsys
