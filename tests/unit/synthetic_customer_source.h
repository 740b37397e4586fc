// Test helpers for the month evaluation and the training loop: a Santander-shaped model with
// fixed feature statistics, and an in-memory CustomerSource holding generated customers
// (src/core/synthetic_santander.h) exactly as the SPI source would hand them out.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "customer_source.h"
#include "history.h"
#include "lstm_training.h"
#include "model.h"
#include "santander_features.h"
#include "synthetic_santander.h"

namespace recsys::testing {

constexpr int32_t kFirstMonth = 2015 * 12;  // January 2015
constexpr int32_t kMonths = 17;             // to May 2016
constexpr int32_t kLastMonth = kFirstMonth + kMonths - 1;

// The default Santander features plus canal_entrada, with statistics and vocabularies set by
// hand (what fit_feature_statistics would roughly find), and initialised weights.
inline Model synthetic_model(uint32_t window, uint32_t hidden, uint64_t seed) {
    Model m = santander_model_skeleton(SourceSpec{"test.snapshots", "ncodpers", "fecha_dato"}, window, hidden, 1);
    FeatureSpec channel;
    channel.column = "canal_entrada";
    channel.kind = FeatureKind::Categorical;
    channel.role = FeatureRole::Static;
    channel.vocabulary = {"KHE", "KAT", "KFC"};
    m.features.push_back(channel);
    for (FeatureSpec &f : m.features) {
        if (f.column == "age") f.mean = 40, f.stddev = 12;
        if (f.column == "renta") f.mean = 11.5f, f.stddev = 0.7f;
        if (f.column == "antiguedad") f.mean = 60, f.stddev = 50;
        if (f.column == "ind_actividad_cliente" || f.column == "ind_nuevo") f.mean = 0.5f, f.stddev = 0.5f;
        if (f.column == "sexo") f.vocabulary = {"H", "V"};
        if (f.column == "segmento") f.vocabulary = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
    }
    m.index();
    size_weights(m);
    initialize_weights(m, seed);
    return m;
}

// The raw value of a feature in a generated row, as SourceReader would store it.
inline float raw_value(const FeatureSpec &f, const SyntheticRow &r) {
    const float nan = std::nanf("");
    auto number = [&](long v) { return v < 0 ? nan : float(v); };
    auto code = [&](const char *s) { return s ? float(f.code_of(s)) : -1.0f; };
    if (f.column == "age") return number(r.age);
    if (f.column == "renta") return std::isnan(r.renta) ? nan : float(r.renta);
    if (f.column == "antiguedad") return number(r.antiguedad);
    if (f.column == "ind_actividad_cliente") return number(r.ind_actividad_cliente);
    if (f.column == "ind_nuevo") return number(r.ind_nuevo);
    if (f.column == "sexo") return r.sexo ? float(f.code_of(std::string(1, r.sexo))) : -1.0f;
    if (f.column == "segmento") return code(r.segmento);
    if (f.column == "canal_entrada") return code(r.canal_entrada);
    return nan;
}

// Generated customers 0 .. customers - 1, in memory; optionally a poll before every customer
// handed out (to cancel in the middle of a stream).
class SyntheticCustomerSource : public CustomerSource {
public:
    SyntheticCustomerSource(const Model &model, size_t customers, uint64_t seed = 42) {
        SyntheticConfig config;
        config.seed = seed;
        config.first_month = kFirstMonth;
        config.months = kMonths;
        SyntheticSantander generator(config);
        all_.reset(model.features.size(), model.product_count());
        std::vector<SyntheticRow> rows;
        for (size_t i = 0; i < customers; ++i) {
            generator.customer(int64_t(i), rows);
            all_.begin_customer(rows.front().ncodpers);
            for (const SyntheticRow &r : rows) {
                float *values;
                uint8_t *products;
                all_.add_row(r.month, &values, &products);
                for (size_t f = 0; f < model.features.size(); ++f) values[f] = raw_value(model.features[f], r);
                for (uint32_t p = 0; p < model.product_count(); ++p) products[p] = r.products[p];
            }
            rows_.push_back(rows);
        }
    }

    uint64_t for_each_customer(int32_t first_month, int32_t end_month, const CustomerFn &on_customer) override {
        uint64_t read = 0;
        HistoryBatch one;
        for (size_t c = 0; c < all_.customer_count(); ++c) {
            one.reset(all_.feature_count, all_.product_count);
            for (size_t r = all_.row_begin[c]; r < all_.row_begin[c + 1]; ++r) {
                if (all_.month[r] < first_month || all_.month[r] >= end_month) continue;
                if (one.customer_count() == 0) one.begin_customer(all_.customer_ids[c]);
                float *values;
                uint8_t *products;
                one.add_row(all_.month[r], &values, &products);
                std::copy_n(all_.values.data() + r * all_.feature_count, all_.feature_count, values);
                std::copy_n(all_.products.data() + r * all_.product_count, all_.product_count, products);
                ++read;
            }
            if (one.customer_count() == 0) continue;
            if (before_customer) before_customer();
            on_customer(one, 0);
        }
        return read;
    }

    // Every customer's rows, all months.
    const HistoryBatch &all() const { return all_; }
    HistoryBatch &all() { return all_; }
    // The generated rows of customer c.
    const std::vector<SyntheticRow> &rows(size_t c) const { return rows_[c]; }

    std::function<void()> before_customer;

private:
    HistoryBatch all_;
    std::vector<std::vector<SyntheticRow>> rows_;
};

}  // namespace recsys::testing
