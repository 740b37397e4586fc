// An independent, strict RFC 8259 JSON reader for the fuzz targets' oracles: the JSON that
// recsys writes must be valid UTF-8, valid JSON, free of \u0000 escapes (jsonb refuses them)
// and must read back to the strings and numbers that were written.
#pragma once

#include "../reference_utf8.h"
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fuzzcheck {

using recsys_test::reference_utf8;

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool boolean = false;
    std::string text;  // a string's decoded value, or a number's literal
    std::vector<Json> items;
    std::vector<std::pair<std::string, Json>> members;

    const Json *get(std::string_view key) const {
        for (const auto &m : members)
            if (m.first == key) return &m.second;
        return nullptr;
    }
    double number() const { return std::strtod(text.c_str(), nullptr); }
};

class JsonReader {
public:
    explicit JsonReader(std::string_view in) : s_(in) {}

    // Parses one complete document; on failure returns false with error() set.
    bool document(Json &out) {
        if (!reference_utf8(s_)) return fail("not valid UTF-8");
        ws();
        if (!value(out, 0)) return false;
        ws();
        if (i_ != s_.size()) return fail("trailing characters");
        return true;
    }
    const std::string &error() const { return error_; }
    bool saw_nul_escape() const { return nul_escape_; }

private:
    bool fail(const std::string &what) {
        if (error_.empty()) error_ = what + " at offset " + std::to_string(i_);
        return false;
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    bool literal(const char *word) {
        const std::string_view w(word);
        if (s_.substr(i_, w.size()) != w) return fail("bad literal");
        i_ += w.size();
        return true;
    }
    bool value(Json &out, int depth) {
        if (depth > 64) return fail("too deep");
        if (i_ >= s_.size()) return fail("unexpected end");
        const char c = s_[i_];
        if (c == '{') return object(out, depth);
        if (c == '[') return array(out, depth);
        if (c == '"') {
            out.kind = Json::String;
            return string(out.text);
        }
        if (c == 't' || c == 'f') {
            out.kind = Json::Bool;
            out.boolean = c == 't';
            return literal(c == 't' ? "true" : "false");
        }
        if (c == 'n') {
            out.kind = Json::Null;
            return literal("null");
        }
        out.kind = Json::Number;
        return number(out.text);
    }
    bool object(Json &out, int depth) {
        out.kind = Json::Object;
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == '}') {
            ++i_;
            return true;
        }
        for (;;) {
            ws();
            if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a key");
            std::string key;
            if (!string(key)) return false;
            ws();
            if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':'");
            ++i_;
            ws();
            Json v;
            if (!value(v, depth + 1)) return false;
            out.members.emplace_back(std::move(key), std::move(v));
            ws();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == '}') {
                ++i_;
                return true;
            }
            return fail("expected ',' or '}'");
        }
    }
    bool array(Json &out, int depth) {
        out.kind = Json::Array;
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == ']') {
            ++i_;
            return true;
        }
        for (;;) {
            ws();
            Json v;
            if (!value(v, depth + 1)) return false;
            out.items.push_back(std::move(v));
            ws();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == ']') {
                ++i_;
                return true;
            }
            return fail("expected ',' or ']'");
        }
    }
    static void put_utf8(std::string &out, uint32_t cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }
    bool hex4(uint32_t &v) {
        if (i_ + 4 > s_.size()) return fail("short \\u escape");
        v = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            v <<= 4;
            if (h >= '0' && h <= '9')
                v |= uint32_t(h - '0');
            else if (h >= 'a' && h <= 'f')
                v |= uint32_t(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
                v |= uint32_t(h - 'A' + 10);
            else
                return fail("bad hex digit");
        }
        return true;
    }
    bool string(std::string &out) {
        ++i_;  // opening quote
        for (;;) {
            if (i_ >= s_.size()) return fail("unterminated string");
            const uint8_t c = uint8_t(s_[i_]);
            if (c == '"') {
                ++i_;
                return true;
            }
            if (c < 0x20) return fail("unescaped control character");
            if (c != '\\') {
                out += char(c);
                ++i_;
                continue;
            }
            if (++i_ >= s_.size()) return fail("unterminated escape");
            const char e = s_[i_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        uint32_t lo;
                        if (s_.substr(i_, 2) != "\\u") return fail("lone high surrogate");
                        i_ += 2;
                        if (!hex4(lo)) return false;
                        if (lo < 0xDC00 || lo > 0xDFFF) return fail("bad surrogate pair");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    if (cp == 0) nul_escape_ = true;
                    put_utf8(out, cp);
                    break;
                }
                default: return fail("bad escape");
            }
        }
    }
    bool number(std::string &out) {
        const size_t start = i_;
        auto digit = [&] { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; };
        if (i_ < s_.size() && s_[i_] == '-') ++i_;
        if (!digit()) return fail("bad number");
        if (s_[i_] == '0') {
            ++i_;
        } else {
            while (digit()) ++i_;
        }
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            if (!digit()) return fail("bad fraction");
            while (digit()) ++i_;
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (!digit()) return fail("bad exponent");
            while (digit()) ++i_;
        }
        out.assign(s_.substr(start, i_ - start));
        return true;
    }

    std::string_view s_;
    size_t i_ = 0;
    std::string error_;
    bool nul_escape_ = false;
};

}  // namespace fuzzcheck
