// recsys_model_cli: model file utilities over the database-independent core.
//
//   recsys_model_cli info  MODEL
//       Prints the model's spec as JSON (model_spec_json), without the weights.
//   recsys_model_cli score MODEL STEPS.f32 STATICS.f32 BATCH OUT.f32
//       Raw little-endian float32 files: STEPS is time-major T x BATCH x step_width,
//       STATICS is BATCH x static_width (may be empty when static_width is 0).
//       Writes BATCH x P sigmoid scores from LstmForward to OUT.
//   recsys_model_cli grad  MODEL STEPS STATICS LABELS MASK BATCH OUTDIR
//       LABELS and MASK are BATCH x P float32 (0 or 1). Runs LstmTrainer::forward_backward
//       and writes OUTDIR/loss.txt and one float32 file per gradient, named after the
//       PyTorch parameters: lstm.weight_ih_l{k}.f32, lstm.weight_hh_l{k}.f32,
//       lstm.bias_ih_l{k}.f32, lstm.bias_hh_l{k}.f32, head.weight.f32, head.bias.f32.
//
// The tests in tests/integration/test_torch_parity.py drive this program.
// Any recsys::Error prints its message (and detail) on stderr and exits with status 1.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "errors.h"
#include "lstm_forward.h"
#include "lstm_training.h"
#include "model.h"
#include "model_format.h"
#include "model_json.h"

namespace {

using recsys::ErrorKind;
using recsys::fail;

int usage() {
    std::cerr << "usage:\n"
                 "  recsys_model_cli info  MODEL\n"
                 "  recsys_model_cli score MODEL STEPS.f32 STATICS.f32 BATCH OUT.f32\n"
                 "  recsys_model_cli grad  MODEL STEPS.f32 STATICS.f32 LABELS.f32 MASK.f32 BATCH OUTDIR\n";
    return 2;
}

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(ErrorKind::InvalidParameter, "cannot open \"" + path + "\": " + std::strerror(errno));
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail(ErrorKind::InvalidParameter, "cannot read \"" + path + "\"");
    return data;
}

// Reads exactly `count` float32 values (host order is little-endian on every supported target).
std::vector<float> read_floats(const std::string &path, size_t count, const char *what) {
    const std::vector<uint8_t> bytes = read_bytes(path);
    if (bytes.size() != count * sizeof(float))
        fail(ErrorKind::DataException, std::string(what) + " file has the wrong size",
             "\"" + path + "\" has " + std::to_string(bytes.size()) + " bytes; expected " + std::to_string(count) +
                 " float32 values (" + std::to_string(count * sizeof(float)) + " bytes).");
    std::vector<float> v(count);
    if (count) std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
}

void write_floats(const std::string &path, const float *data, size_t count) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorKind::InvalidParameter, "cannot create \"" + path + "\": " + std::strerror(errno));
    out.write(reinterpret_cast<const char *>(data), std::streamsize(count * sizeof(float)));
    if (!out) fail(ErrorKind::InvalidParameter, "cannot write \"" + path + "\"");
}

void write_floats(const std::string &path, const std::vector<float> &v) { write_floats(path, v.data(), v.size()); }

recsys::Model load_model(const std::string &path) {
    const std::vector<uint8_t> bytes = read_bytes(path);
    return recsys::parse_model(bytes.data(), bytes.size());
}

size_t parse_batch(const char *text) {
    char *end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v <= 0 || v > (1LL << 24))
        fail(ErrorKind::InvalidParameter, std::string("BATCH must be a positive integer, got \"") + text + "\"");
    return size_t(v);
}

int cmd_info(int argc, char **argv) {
    if (argc != 3) return usage();
    const recsys::Model m = load_model(argv[2]);
    std::cout << recsys::model_spec_json(m) << "\n";
    return 0;
}

int cmd_score(int argc, char **argv) {
    if (argc != 7) return usage();
    const recsys::Model m = load_model(argv[2]);
    const size_t B = parse_batch(argv[5]);
    const size_t T = m.window_months, W = m.step_width(), S = m.static_width(), P = m.product_count();
    const std::vector<float> steps = read_floats(argv[3], T * B * W, "steps");
    const std::vector<float> statics = read_floats(argv[4], B * S, "statics");
    std::vector<float> scores(B * P);
    recsys::LstmForward forward(m, B);
    forward.score(steps.data(), statics.data(), B, scores.data());
    write_floats(argv[6], scores);
    return 0;
}

int cmd_grad(int argc, char **argv) {
    if (argc != 9) return usage();
    recsys::Model m = load_model(argv[2]);
    const size_t B = parse_batch(argv[7]);
    const size_t T = m.window_months, W = m.step_width(), S = m.static_width(), P = m.product_count();
    const std::vector<float> steps = read_floats(argv[3], T * B * W, "steps");
    const std::vector<float> statics = read_floats(argv[4], B * S, "statics");
    const std::vector<float> labels = read_floats(argv[5], B * P, "labels");
    const std::vector<float> mask = read_floats(argv[6], B * P, "mask");
    const std::string dir = argv[8];

    recsys::ModelGradients grads(m);
    recsys::LstmTrainer trainer(m, B);
    const double loss =
        trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads);

    for (size_t l = 0; l < grads.layers.size(); ++l) {
        const std::string k = std::to_string(l);
        write_floats(dir + "/lstm.weight_ih_l" + k + ".f32", grads.layers[l].w_ih);
        write_floats(dir + "/lstm.weight_hh_l" + k + ".f32", grads.layers[l].w_hh);
        write_floats(dir + "/lstm.bias_ih_l" + k + ".f32", grads.layers[l].b_ih);
        write_floats(dir + "/lstm.bias_hh_l" + k + ".f32", grads.layers[l].b_hh);
    }
    write_floats(dir + "/head.weight.f32", grads.dense_w);
    write_floats(dir + "/head.bias.f32", grads.dense_b);

    const std::string loss_path = dir + "/loss.txt";
    FILE *f = std::fopen(loss_path.c_str(), "w");
    if (!f) fail(ErrorKind::InvalidParameter, "cannot create \"" + loss_path + "\": " + std::strerror(errno));
    std::fprintf(f, "%.17g\n", loss);
    if (std::fclose(f) != 0) fail(ErrorKind::InvalidParameter, "cannot write \"" + loss_path + "\"");
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    try {
        if (cmd == "info") return cmd_info(argc, argv);
        if (cmd == "score") return cmd_score(argc, argv);
        if (cmd == "grad") return cmd_grad(argc, argv);
        return usage();
    } catch (const recsys::Error &e) {
        std::cerr << "recsys_model_cli: " << e.what();
        if (!e.detail().empty()) std::cerr << "\nDETAIL: " << e.detail();
        if (!e.hint().empty()) std::cerr << "\nHINT: " << e.hint();
        std::cerr << "\n";
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "recsys_model_cli: " << e.what() << "\n";
        return 1;
    }
}
