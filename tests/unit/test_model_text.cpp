// The text rule for model strings (model_text.h): UTF-8 per RFC 3629, no C0 controls.
#include "../reference_utf8.h"
#include "core/model_text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/errors.h"

namespace {

using namespace recsys;

using recsys_test::reference_utf8;

TEST(ModelText, AgreesWithReferenceOnEveryOneAndTwoByteString) {
    for (int a = 0; a < 256; ++a) {
        const std::string one(1, char(a));
        ASSERT_EQ(is_valid_utf8(one), reference_utf8(one)) << a;
        for (int b = 0; b < 256; ++b) {
            const std::string two{char(a), char(b)};
            ASSERT_EQ(is_valid_utf8(two), reference_utf8(two)) << a << " " << b;
        }
    }
}

TEST(ModelText, AgreesWithReferenceOnThreeAndFourByteSequences) {
    const int tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC3, 0xE0, 0xFF};
    size_t valid = 0;
    for (int a = 0xE0; a < 256; ++a)
        for (int b = 0; b < 256; ++b)
            for (int c : tails) {
                const std::string three{char(a), char(b), char(c)};
                ASSERT_EQ(is_valid_utf8(three), reference_utf8(three)) << a << " " << b << " " << c;
                for (int d : tails) {
                    const std::string four{char(a), char(b), char(c), char(d)};
                    const bool ok = reference_utf8(four);
                    ASSERT_EQ(is_valid_utf8(four), ok) << a << " " << b << " " << c << " " << d;
                    valid += ok;
                }
            }
    EXPECT_GT(valid, 1000u);
}

TEST(ModelText, ControlCharactersAreNotText) {
    for (int c = 0; c < 0x20; ++c) {
        const std::string s = std::string("a") + char(c) + "b";
        EXPECT_TRUE(is_valid_utf8(s)) << c;
        TextDefect d;
        ASSERT_FALSE(is_valid_text(s, &d)) << c;
        EXPECT_TRUE(d.control);
        EXPECT_EQ(d.offset, 1u);
        EXPECT_EQ(d.byte, c);
    }
    EXPECT_TRUE(is_valid_text("DEL \x7f and C1 \xc2\x80 are allowed"));
    EXPECT_TRUE(is_valid_text(""));
}

TEST(ModelText, DefectReasons) {
    struct Case {
        std::string s;
        size_t offset;
        const char *reason;
    };
    const Case cases[] = {
        {"ab\x80", 2, "is a continuation byte without a lead byte"},
        {"\xc0\xaf", 0, "starts an overlong encoding"},
        {"x\xe0\x80\xaf", 1, "starts an overlong encoding"},
        {"\xf0\x80\x80\xaf", 0, "starts an overlong encoding"},
        {"\xed\xa0\x80", 0, "starts a UTF-16 surrogate (U+D800 to U+DFFF)"},
        {"\xf4\x90\x80\x80", 0, "starts a code point above U+10FFFF"},
        {"\xf7\xbf\xbf\xbf", 0, "starts a code point above U+10FFFF"},
        {"\xfe", 0, "never occurs in UTF-8"},
        {"\xe2\x82", 0, "starts a sequence cut short by the end of the string"},
        {"\xc3(", 0, "starts a sequence without enough continuation bytes"},
        {"\xe2\x82(", 0, "starts a sequence without enough continuation bytes"},
    };
    for (const Case &c : cases) {
        TextDefect d;
        ASSERT_FALSE(is_valid_text(c.s, &d)) << c.reason;
        EXPECT_FALSE(d.control);
        EXPECT_EQ(d.offset, c.offset) << c.reason;
        EXPECT_STREQ(d.reason, c.reason);
    }
}

TEST(ModelText, CheckTextMessages) {
    try {
        check_text("caf\xc3", "product name 4");
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidText);
        EXPECT_STREQ(e.what(), "product name 4 is not valid UTF-8");
        EXPECT_NE(e.detail().find("Byte 3 of the string (0xC3)"), std::string::npos) << e.detail();
    }
    try {
        check_text(std::string("\0", 1), "id column");
        FAIL();
    } catch (const Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidText);
        EXPECT_STREQ(e.what(), "id column contains a NUL byte");
    }
    try {
        check_text("a\nb", "source relation");
        FAIL();
    } catch (const Error &e) {
        EXPECT_STREQ(e.what(), "source relation contains a control character");
        EXPECT_NE(e.detail().find("U+000A"), std::string::npos) << e.detail();
    }
    EXPECT_NO_THROW(check_text("caf\xc3\xa9", "x"));
}

}  // namespace
