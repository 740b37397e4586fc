// Writes the seed corpora of the fuzz targets (tests/run_fuzz.sh runs it; nothing binary is
// committed): valid models of several shapes for fuzz_model_format, and the same models,
// their JSON specs, strings and numbers, each behind its mode byte, for fuzz_model_json.
//
//   seed_corpus FORMAT_DIR JSON_DIR
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "model.h"
#include "model_format.h"
#include "model_json.h"

namespace {

using namespace recsys;

void write_file(const std::string &path, const std::vector<uint8_t> &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) {
        std::cerr << "cannot write " << path << "\n";
        std::exit(1);
    }
}

std::vector<uint8_t> with_mode(uint8_t mode, const void *p, size_t n) {
    std::vector<uint8_t> v{mode};
    const auto *b = static_cast<const uint8_t *>(p);
    v.insert(v.end(), b, b + n);
    return v;
}

// A small model: `products` products, `layers` layers of `hidden`, and features picked by
// the flags; weights are distinct small values.
Model make_model(uint32_t products, uint32_t hidden, uint32_t layers, bool numeric, bool categorical,
                 bool statics, bool adds, bool from_start, uint32_t window) {
    Model m;
    m.source = {"santander.snapshots", "ncodpers", "fecha_dato"};
    m.window_months = window;
    m.include_product_adds = adds;
    if (from_start) {
        m.history = HistoryMode::FromStartMonth;
        m.start_month = 2015 * 12;
    }
    m.hidden = hidden;
    const char *names[] = {"ind_ahor_fin_ult1", "ind_cco_fin_ult1", "ind_recibo_ult1", "ind_tjcr_fin_ult1"};
    for (uint32_t p = 0; p < products; ++p) m.products.push_back(names[p % 4] + std::string(p >= 4 ? "_b" : ""));
    if (numeric) {
        FeatureSpec f;
        f.column = "renta";
        f.kind = FeatureKind::Numeric;
        f.role = statics ? FeatureRole::Static : FeatureRole::Dynamic;
        f.transform = NumericTransform::Log1p;
        f.mean = 11.25f;
        f.stddev = 0.75f;
        f.clip_min = 0.0f;
        f.clip_max = std::numeric_limits<float>::infinity();
        f.missing_indicator = true;
        m.features.push_back(f);
        FeatureSpec age = f;
        age.column = "age";
        age.role = FeatureRole::Dynamic;
        age.transform = NumericTransform::Identity;
        age.mean = 40.0f;
        age.stddev = 12.5f;
        age.clip_min = 18.0f;
        age.clip_max = 100.0f;
        age.missing_indicator = false;
        m.features.push_back(age);
    }
    if (categorical) {
        FeatureSpec f;
        f.column = "segmento";
        f.kind = FeatureKind::Categorical;
        f.role = FeatureRole::Dynamic;
        f.vocabulary = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
        m.features.push_back(f);
        FeatureSpec g = f;
        g.column = "nomprov";
        g.role = statics ? FeatureRole::Static : FeatureRole::Dynamic;
        g.vocabulary = {"CORU\xc3\x91" "A, A", "M\xc3\x81LAGA", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
        m.features.push_back(g);
    }
    m.layers.resize(layers);
    const size_t G = 4 * size_t(hidden);
    uint32_t k = 0;
    auto fill = [&](std::vector<float> &v, size_t n) {
        v.resize(n);
        for (auto &x : v) x = float(int(++k % 17) - 8) / 16.0f;
    };
    for (uint32_t l = 0; l < layers; ++l) {
        fill(m.layers[l].w_ih, G * m.layer_input_width(l));
        fill(m.layers[l].w_hh, G * hidden);
        fill(m.layers[l].b_ih, G);
        fill(m.layers[l].b_hh, G);
    }
    fill(m.dense_w, size_t(products) * (hidden + m.static_width()));
    fill(m.dense_b, products);
    m.index();
    return m;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: seed_corpus FORMAT_DIR JSON_DIR\n";
        return 2;
    }
    const std::string format_dir = argv[1], json_dir = argv[2];
    const std::vector<Model> models = {
        make_model(1, 1, 1, false, false, false, false, false, 1),
        make_model(2, 2, 1, true, false, false, true, false, 3),
        make_model(2, 2, 1, false, true, false, false, false, 4),
        make_model(3, 2, 2, true, true, true, true, false, 6),
        make_model(2, 3, 1, true, true, true, false, true, 12),
        make_model(4, 1, 3, false, true, true, true, true, 240),
    };
    int n = 0;
    for (size_t i = 0; i < models.size(); ++i) {
        const std::vector<uint8_t> bytes = serialize_model(models[i]);
        write_file(format_dir + "/model" + std::to_string(i), bytes);
        write_file(json_dir + "/model" + std::to_string(i), with_mode(2, bytes.data(), bytes.size()));
        const std::string spec = model_spec_json(models[i]);
        write_file(json_dir + "/spec" + std::to_string(i), with_mode(0, spec.data(), spec.size()));
        n += 2;
    }
    const std::string strings[] = {
        "", "plain", "quote\" backslash\\ slash/", std::string("tab\tnl\ncr\rnul\0end", 17),
        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf", "bad \xc0\x80 \xed\xa0\x80 \xff",
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; ++i, ++n)
        write_file(json_dir + "/string" + std::to_string(i), with_mode(0, strings[i].data(), strings[i].size()));
    const double numbers[] = {0.0, -0.0, 0.1, 1.0 / 3.0, 1e300, -2.5e-310, 123456789.0, 1e-7};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; ++i, ++n)
        write_file(json_dir + "/number" + std::to_string(i), with_mode(1, &numbers[i], sizeof numbers[i]));
    const std::string separated[] = {
        std::string("public.t\xfe" "id\xfe" "month\xfe" "segmento\xfe" "p1\xfe" "v1\xfe" "p2\xfe" "v2"),
        std::string("rel\xfe" "id\xfe" "m\xfe" "col\xfe" "caf\xc3\xa9\xfe" "\xe2\x82\xac\xfe" "a\"b\\c"),
        std::string("rel\xfe" "id\xfe" "m\xfe" "col\xfe" "p\xfe" "bad\xc3"),
        std::string("rel\xfe" "id\tx\xfe" "m\xfe" "col\xfe" "p"),
    };
    for (size_t i = 0; i < sizeof separated / sizeof separated[0]; ++i, ++n)
        write_file(json_dir + "/strings" + std::to_string(i), with_mode(3, separated[i].data(), separated[i].size()));
    std::cout << models.size() << " model seeds, " << n << " JSON seeds\n";
    return 0;
}
