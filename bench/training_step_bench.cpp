// recsys.train()'s training step alone, on the same examples the training loop builds, and the
// files that let bench/torch_training_reference.py run the very same steps in torch.
//
//   build/training_step_bench --out DIR [--customers N] [--steps S] [--batch B] [--hidden H]
//                             [--layers L] [--window T] [--learning-rate LR] [--clip C] [--seed K]
//
// 1. Generates N customers (src/core/synthetic_santander.h: the data of recsys.generate_santander)
//    and a model with recsys.train()'s defaults (window 16, hidden 128, one layer, batch 256,
//    Adam lr 0.003, clip 5, seed 1) and fixed feature statistics (tests/unit/synthetic_customer_source.h).
// 2. Builds the training examples exactly as train_model() does (target months: the 12 before the
//    last month, the validation month; examples without adds kept with probability 0.1 by the same
//    hash) and keeps the first S full mini-batches (fewer if the data has fewer; steps then cycle).
// 3. Writes DIR/meta.json, DIR/weights.bin (the initial weights), DIR/batches.bin (each batch's
//    steps T x B x W, statics B x S, labels and mask B x P; float32, little-endian) and
//    DIR/gradients.bin (d loss / d weights of the first batch at the initial weights).
// 4. Takes S steps (forward_backward + adam_step, one BLAS thread) and prints one JSON object:
//    examples_per_second and seconds (wall), examples_per_cpu_second and cpu_seconds (the
//    process's CPU time), and the loss of every step. Batch building and file writing
//    are outside the timed region, as in the torch reference.
//
// Tensor order in weights.bin and gradients.bin, per layer: w_ih (4H x in), w_hh (4H x H), b_ih,
// b_hh (4H, gates [i | f | g | o] as torch.nn.LSTM); then dense_w (P x (H + S)), dense_b (P).
#include <cblas.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../tests/unit/synthetic_customer_source.h"
#include "example_batch.h"
#include "feature_encoder.h"
#include "lstm_training.h"
#include "training_loop.h"

using namespace recsys;

namespace {

struct Options {
    std::string out;
    size_t customers = 20000, steps = 100, batch = 256;
    uint32_t hidden = 128, layers = 1, window = 16;
    float learning_rate = 0.003f, clip = 5.0f;
    uint64_t seed = 1;
};

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr,
                 "training_step_bench: %s\nusage: training_step_bench --out DIR [--customers N] [--steps S] "
                 "[--batch B] [--hidden H] [--layers L] [--window T] [--learning-rate LR] [--clip C] [--seed K]\n",
                 why);
    std::exit(2);
}

Options parse(int argc, char **argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + a).c_str());
        const char *v = argv[++i];
        if (a == "--out") o.out = v;
        else if (a == "--customers") o.customers = std::stoul(v);
        else if (a == "--steps") o.steps = std::stoul(v);
        else if (a == "--batch") o.batch = std::stoul(v);
        else if (a == "--hidden") o.hidden = uint32_t(std::stoul(v));
        else if (a == "--layers") o.layers = uint32_t(std::stoul(v));
        else if (a == "--window") o.window = uint32_t(std::stoul(v));
        else if (a == "--learning-rate") o.learning_rate = std::stof(v);
        else if (a == "--clip") o.clip = std::stof(v);
        else if (a == "--seed") o.seed = std::stoull(v);
        else usage(("unknown option " + a).c_str());
    }
    if (o.out.empty()) usage("--out is required");
    if (o.customers == 0 || o.steps == 0 || o.batch == 0 || o.hidden == 0 || o.layers == 0 || o.window == 0)
        usage("sizes must be positive");
    return o;
}

// One full mini-batch, as the trainer reads it.
struct StoredBatch {
    std::vector<float> steps, statics, labels, mask;
};

// The examples of train_model()'s first epoch, in its order, as full batches (at most `limit`).
std::vector<StoredBatch> build_batches(const Model &model, CustomerSource &source, const TrainingOptions &options,
                                       size_t limit) {
    FeatureEncoder encoder(model);
    ExampleBatch batch(encoder, options.batch_size, model.product_count());
    const uint32_t P = model.product_count();
    const size_t T = model.window_months, W = model.step_width(), S = model.static_width(), B = options.batch_size;
    std::vector<StoredBatch> out;
    source.for_each_customer(training_first_month(model, options), options.validation,
                             [&](const HistoryBatch &h, size_t c) {
        for (int32_t m = options.first_target; m < options.validation && out.size() < limit; ++m) {
            const long rp = find_month_row(h, c, m - 1);
            if (rp < 0) continue;
            const long rm = find_month_row(h, c, m);
            if (rm < 0) continue;
            const uint8_t *now = h.products.data() + size_t(rm) * P;
            const uint8_t *before = h.products.data() + size_t(rp) * P;
            bool any_add = false;
            for (uint32_t p = 0; p < P; ++p) any_add = any_add || (now[p] && !before[p]);
            if (!any_add && !keep_no_add_example(options.seed, options.no_add_sample_rate, h.customer_ids[c], m))
                continue;
            const size_t slot = batch.add(h, c, m - 1);
            float *labels = batch.labels(slot), *mask = batch.mask(slot);
            for (uint32_t p = 0; p < P; ++p) {
                labels[p] = now[p] && !before[p] ? 1.0f : 0.0f;
                mask[p] = before[p] ? 0.0f : 1.0f;
            }
            if (!batch.full()) continue;
            batch.finish();
            StoredBatch s;
            s.steps.assign(batch.steps(), batch.steps() + T * B * W);
            s.statics.assign(batch.statics(), batch.statics() + B * S);
            s.labels.assign(batch.labels(), batch.labels() + B * P);
            s.mask.assign(batch.mask(), batch.mask() + B * P);
            out.push_back(std::move(s));
            batch.clear();
        }
    });
    return out;
}

double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

void write_floats(std::ofstream &f, const std::vector<float> &v) {
    f.write(reinterpret_cast<const char *>(v.data()), std::streamsize(v.size() * sizeof(float)));
}

template <typename Weights>
void write_tensors(const std::string &path, const Weights &w) {
    std::ofstream f(path, std::ios::binary);
    for (const auto &layer : w.layers) {
        write_floats(f, layer.w_ih);
        write_floats(f, layer.w_hh);
        write_floats(f, layer.b_ih);
        write_floats(f, layer.b_hh);
    }
    write_floats(f, w.dense_w);
    write_floats(f, w.dense_b);
    if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char **argv) {
    const Options o = parse(argc, argv);
    openblas_set_num_threads(1);
    try {
        Model model = testing::synthetic_model(o.window, o.hidden, o.seed);
        if (o.layers > 1) {
            model.layers.resize(o.layers);
            size_weights(model);
            initialize_weights(model, o.seed);
        }
        testing::SyntheticCustomerSource source(model, o.customers);
        TrainingOptions options;
        options.validation = testing::kLastMonth;
        options.first_target = options.validation - 12;  // recsys.train()'s train_months default
        options.batch_size = o.batch;
        options.seed = o.seed;
        options.adam.learning_rate = o.learning_rate;
        options.adam.clip_norm = o.clip;
        const std::vector<StoredBatch> batches = build_batches(model, source, options, o.steps);
        if (batches.empty()) throw std::runtime_error("the data gives no full batch; use more customers");

        const size_t T = model.window_months, W = model.step_width(), S = model.static_width();
        const size_t P = model.product_count(), B = o.batch;
        {
            std::ofstream meta(o.out + "/meta.json");
            meta << "{\"T\": " << T << ", \"W\": " << W << ", \"S\": " << S << ", \"P\": " << P << ", \"H\": "
                 << o.hidden << ", \"layers\": " << o.layers << ", \"batch\": " << B << ", \"batches\": "
                 << batches.size() << ", \"steps\": " << o.steps << ", \"learning_rate\": " << o.learning_rate
                 << ", \"clip_norm\": " << o.clip << ", \"beta1\": 0.9, \"beta2\": 0.999, \"epsilon\": 1e-8"
                 << ", \"customers\": " << o.customers << "}\n";
            std::ofstream f(o.out + "/batches.bin", std::ios::binary);
            for (const StoredBatch &b : batches) {
                write_floats(f, b.steps);
                write_floats(f, b.statics);
                write_floats(f, b.labels);
                write_floats(f, b.mask);
            }
            if (!meta || !f) throw std::runtime_error("cannot write into " + o.out);
        }
        write_tensors(o.out + "/weights.bin", model);

        LstmTrainer trainer(model, B, options.adam);
        ModelGradients grads(model);
        {
            // The first batch's gradients at the initial weights (the weights are not changed).
            const StoredBatch &b = batches.front();
            trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B, grads);
            write_tensors(o.out + "/gradients.bin", grads);
        }

        std::vector<double> losses(o.steps);
        // Wall time, and the process's CPU time: on a shared machine the scheduler gives part of
        // the wall time to other processes, and the CPU time is the fairer figure to compare.
        const auto t0 = std::chrono::steady_clock::now();
        const double cpu0 = process_cpu_seconds();
        for (size_t s = 0; s < o.steps; ++s) {
            const StoredBatch &b = batches[s % batches.size()];
            losses[s] = trainer.forward_backward(b.steps.data(), b.statics.data(), b.labels.data(), b.mask.data(), B,
                                                 grads);
            trainer.adam_step(grads);
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double cpu_seconds = process_cpu_seconds() - cpu0;
        std::printf("{\"implementation\": \"recsys\", \"examples_per_second\": %.1f, \"seconds\": %.4f, "
                    "\"examples_per_cpu_second\": %.1f, \"cpu_seconds\": %.4f, \"steps\": %zu, \"batch\": %zu, "
                    "\"losses\": [",
                    double(o.steps * B) / seconds, seconds, double(o.steps * B) / cpu_seconds, cpu_seconds, o.steps, B);
        for (size_t s = 0; s < o.steps; ++s) std::printf("%s%.9g", s ? ", " : "", losses[s]);
        std::printf("]}\n");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "training_step_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
