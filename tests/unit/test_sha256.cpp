#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

std::string hex_of(const std::string &s) {
    return recsys::to_hex(recsys::sha256(reinterpret_cast<const uint8_t *>(s.data()), s.size()));
}

TEST(Sha256, EmptyString) {
    EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(recsys::to_hex(recsys::sha256(nullptr, 0)),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Abc) {
    EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, TwoBlockMessage448Bits) {
    EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FourBlockMessage896Bits) {
    EXPECT_EQ(hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu"),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionA) {
    std::string s(1000000, 'a');
    EXPECT_EQ(hex_of(s), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
    // Lengths around the 55/56/64-byte padding edges must differ from each other and be stable.
    std::vector<std::string> seen;
    for (size_t n : {55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u}) {
        std::string h = hex_of(std::string(n, 'x'));
        EXPECT_EQ(h.size(), 64u);
        for (const auto &prev : seen) EXPECT_NE(prev, h);
        seen.push_back(h);
    }
    // Known value for a 64-byte block of 'a' (one full block plus a padding block).
    EXPECT_EQ(hex_of(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, HexIsLowercase) {
    recsys::Sha256Digest d{};
    d[0] = 0xAB;
    d[31] = 0x0F;
    std::string h = recsys::to_hex(d);
    EXPECT_EQ(h.substr(0, 2), "ab");
    EXPECT_EQ(h.substr(62, 2), "0f");
}

}  // namespace
