#include "santander_features.h"

#include "santander_schema.h"

namespace recsys {

namespace {

FeatureSpec numeric(const char *column, NumericTransform transform, float clip_min, float clip_max,
                    bool missing_indicator) {
    FeatureSpec f;
    f.column = column;
    f.kind = FeatureKind::Numeric;
    f.role = FeatureRole::Static;
    f.transform = transform;
    f.clip_min = clip_min;
    f.clip_max = clip_max;
    f.missing_indicator = missing_indicator;
    return f;
}

FeatureSpec categorical(const char *column) {
    FeatureSpec f;
    f.column = column;
    f.kind = FeatureKind::Categorical;
    f.role = FeatureRole::Static;
    return f;
}

}  // namespace

std::vector<FeatureSpec> santander_default_features() {
    return {
        // Ages 0..120 occur; beyond 100 they are data errors, clipped rather than trusted.
        numeric("age", NumericTransform::Identity, 0.0f, 100.0f, true),
        // Income is heavily skewed; log1p makes its scale comparable to the other inputs.
        numeric("renta", NumericTransform::Log1p, 0.0f, 1e8f, true),
        numeric("antiguedad", NumericTransform::Identity, 0.0f, 300.0f, true),
        numeric("ind_actividad_cliente", NumericTransform::Identity, 0.0f, 1.0f, true),
        numeric("ind_nuevo", NumericTransform::Identity, 0.0f, 1.0f, false),
        categorical("sexo"),
        categorical("segmento"),
    };
}

void size_weights(Model &model) {
    const size_t G = 4 * size_t(model.hidden), H = model.hidden;
    for (size_t l = 0; l < model.layers.size(); ++l) {
        model.layers[l].w_ih.assign(G * model.layer_input_width(l), 0.0f);
        model.layers[l].w_hh.assign(G * H, 0.0f);
        model.layers[l].b_ih.assign(G, 0.0f);
        model.layers[l].b_hh.assign(G, 0.0f);
    }
    model.dense_w.assign(size_t(model.product_count()) * (H + model.static_width()), 0.0f);
    model.dense_b.assign(model.product_count(), 0.0f);
}

Model santander_model_skeleton(const SourceSpec &source, uint32_t window_months, uint32_t hidden, uint32_t layers) {
    Model m;
    m.source = source;
    m.window_months = window_months;
    m.hidden = hidden;
    m.include_product_adds = true;
    m.features = santander_default_features();
    for (const char *p : santander::kProductColumns) m.products.emplace_back(p);
    m.layers.resize(layers);
    size_weights(m);
    return m;
}

}  // namespace recsys
