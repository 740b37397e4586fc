// The default Santander feature set and model skeleton: reference input widths.
#include "core/santander_features.h"

#include <gtest/gtest.h>

#include <string>

#include "core/errors.h"
#include "core/santander_schema.h"

namespace {

using namespace recsys;

FeatureSpec &feature(Model &m, const std::string &column) {
    for (auto &f : m.features)
        if (f.column == column) return f;
    throw std::runtime_error("no feature " + column);
}

SourceSpec source() { return {"public.santander", "ncodpers", "fecha_dato"}; }

TEST(SantanderFeatures, DefaultFeatureSet) {
    const auto features = santander_default_features();
    ASSERT_EQ(features.size(), 7u);
    for (const auto &f : features) EXPECT_EQ(f.role, FeatureRole::Static) << f.column;
    Model m = santander_model_skeleton(source(), 12, 8, 1);
    EXPECT_EQ(feature(m, "renta").transform, NumericTransform::Log1p);
    EXPECT_EQ(feature(m, "sexo").kind, FeatureKind::Categorical);
    EXPECT_EQ(feature(m, "segmento").kind, FeatureKind::Categorical);
    EXPECT_FALSE(feature(m, "ind_nuevo").missing_indicator);
    EXPECT_TRUE(feature(m, "age").missing_indicator);
}

TEST(SantanderFeatures, SkeletonReferenceShape) {
    Model m = santander_model_skeleton(source(), 12, 32, 2);
    feature(m, "sexo").vocabulary = {"H", "V"};
    feature(m, "segmento").vocabulary = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
    m.index();
    EXPECT_EQ(m.product_count(), 24u);
    for (size_t i = 0; i < 24; ++i) EXPECT_EQ(m.products[i], santander::kProductColumns[i]);
    EXPECT_TRUE(m.include_product_adds);
    EXPECT_EQ(m.step_width(), 48u);
    EXPECT_EQ(m.static_width(), 16u);
    EXPECT_EQ(m.layer_input_width(0), 48u);
    EXPECT_EQ(m.layer_input_width(1), 32u);
    EXPECT_EQ(m.window_months, 12u);
    EXPECT_EQ(m.hidden, 32u);
    ASSERT_EQ(m.layers.size(), 2u);

    // The vocabularies changed the static width, so the skeleton's dense weights no longer fit.
    EXPECT_THROW(m.validate(), Error);

    size_weights(m);
    EXPECT_NO_THROW(m.validate());
    EXPECT_EQ(m.layers[0].w_ih.size(), 4u * 32 * 48);
    EXPECT_EQ(m.layers[0].w_hh.size(), 4u * 32 * 32);
    EXPECT_EQ(m.layers[0].b_ih.size(), 4u * 32);
    EXPECT_EQ(m.layers[0].b_hh.size(), 4u * 32);
    EXPECT_EQ(m.layers[1].w_ih.size(), 4u * 32 * 32);
    EXPECT_EQ(m.layers[1].w_hh.size(), 4u * 32 * 32);
    EXPECT_EQ(m.dense_w.size(), 24u * (32 + 16));
    EXPECT_EQ(m.dense_b.size(), 24u);
    for (float w : m.dense_w) ASSERT_EQ(w, 0.0f);
    EXPECT_EQ(feature(m, "sexo").code_of("V"), 1);
    EXPECT_EQ(feature(m, "sexo").code_of("X"), -1);
}

TEST(SantanderFeatures, SkeletonWithoutVocabulariesIsValid) {
    // Before fitting, each categorical feature is just its unknown slot: 9 + 1 + 1 static inputs.
    Model m = santander_model_skeleton(source(), 6, 4, 1);
    EXPECT_EQ(m.static_width(), 11u);
    EXPECT_EQ(m.step_width(), 48u);
    EXPECT_NO_THROW(m.validate());
}

TEST(SantanderFeatures, SizeWeightsResizesAfterShapeChange) {
    Model m = santander_model_skeleton(source(), 6, 4, 1);
    m.hidden = 16;
    m.layers.resize(3);
    EXPECT_THROW(m.validate(), Error);
    size_weights(m);
    EXPECT_NO_THROW(m.validate());
    EXPECT_EQ(m.layers[2].w_ih.size(), 4u * 16 * 16);
    EXPECT_EQ(m.dense_w.size(), 24u * (16 + 11));
}

}  // namespace
