// libFuzzer target: the binary model format parser (recsys::parse_model), which reads the
// bytes of recsys.models.model and of exported model files.
//
// Each input is parsed twice: as it is (length and checksum checks included), then resealed
// (length and SHA-256 recomputed) so that mutations of the body get past the checksum.
// Oracles: no crash, no sanitizer report, no exception other than recsys::Error of kind
// CorruptModel or InvalidText with a printable message; a model that is accepted validates,
// holds only valid text, serializes to as many bytes as it was read from, and reads back to a
// model that serializes to the same bytes again.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "model.h"
#include "model_format.h"
#include "model_text.h"

namespace {

using namespace recsys;

void parse_and_check(const uint8_t *data, size_t size) {
    Model m;
    try {
        m = parse_model(data, size);
    } catch (const Error &e) {
        fuzzcheck::check_parse_error(e);
        return;
    }
    // Accepted: everything the parser promises must hold.
    try {
        m.validate();
        check_model_text(m);
    } catch (const Error &e) {
        fuzzcheck::oracle_failed(std::string("an accepted model fails validation: ") + e.what());
    }
    for (const FeatureSpec &f : m.features)
        for (size_t v = 0; v < f.vocabulary.size(); ++v)
            if (f.code_of(f.vocabulary[v]) < 0) fuzzcheck::oracle_failed("a vocabulary entry has no code");
    std::vector<uint8_t> once;
    try {
        once = serialize_model(m);
    } catch (const Error &e) {
        fuzzcheck::oracle_failed(std::string("an accepted model does not serialize: ") + e.what());
    }
    if (once.size() != size)
        fuzzcheck::oracle_failed("an accepted model of " + std::to_string(size) + " bytes serializes to " +
                                 std::to_string(once.size()));
    try {
        const Model again = parse_model(once.data(), once.size());
        if (serialize_model(again) != once) fuzzcheck::oracle_failed("serialize(parse(serialize(m))) differs");
    } catch (const Error &e) {
        fuzzcheck::oracle_failed(std::string("a serialized model does not parse: ") + e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parse_and_check(data, size);
    if (size >= 20 + 32) {
        const std::vector<uint8_t> sealed = fuzzcheck::resealed(data, size);
        parse_and_check(sealed.data(), sealed.size());
    }
    return 0;
}
