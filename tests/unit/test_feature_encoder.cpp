// FeatureEncoder window semantics, numeric and categorical encodings; expectations by hand.
#include "core/feature_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/errors.h"
#include "core/history.h"
#include "core/model.h"

namespace {

using namespace recsys;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Two products with "added" flags, T = 3. Features, in this order:
//   0 x   dynamic numeric, identity, mean 10, stddev 2, clip [0, 100], missing indicator  (2)
//   1 inc static  numeric, log1p,    mean 1,  stddev 0.5, clip [0, 1e6], missing indicator (2)
//   2 seg static  categorical {a, b, c}                                                   (4)
//   3 ch  dynamic categorical {x, y}                                                      (3)
// Step:   [prod0, prod1, add0, add1, x, x_missing, ch_x, ch_y, ch_unknown]  (9)
// Static: [inc, inc_missing, seg_a, seg_b, seg_c, seg_unknown]             (6)
Model make_model() {
    Model m;
    m.source = {"public.t", "id", "month"};
    m.window_months = 3;
    m.include_product_adds = true;
    m.hidden = 2;
    m.products = {"p0", "p1"};
    FeatureSpec x;
    x.column = "x";
    x.kind = FeatureKind::Numeric;
    x.role = FeatureRole::Dynamic;
    x.mean = 10.0f;
    x.stddev = 2.0f;
    x.clip_min = 0.0f;
    x.clip_max = 100.0f;
    x.missing_indicator = true;
    FeatureSpec inc;
    inc.column = "inc";
    inc.kind = FeatureKind::Numeric;
    inc.role = FeatureRole::Static;
    inc.transform = NumericTransform::Log1p;
    inc.mean = 1.0f;
    inc.stddev = 0.5f;
    inc.clip_min = 0.0f;
    inc.clip_max = 1e6f;
    inc.missing_indicator = true;
    FeatureSpec seg;
    seg.column = "seg";
    seg.kind = FeatureKind::Categorical;
    seg.role = FeatureRole::Static;
    seg.vocabulary = {"a", "b", "c"};
    FeatureSpec ch;
    ch.column = "ch";
    ch.kind = FeatureKind::Categorical;
    ch.role = FeatureRole::Dynamic;
    ch.vocabulary = {"x", "y"};
    m.features = {x, inc, seg, ch};
    m.index();
    return m;
}

struct Row {
    int32_t month;
    float x, inc, seg, ch;
    uint8_t p0, p1;
};

void add_customer(HistoryBatch &batch, int64_t id, const std::vector<Row> &rows) {
    batch.begin_customer(id);
    for (const Row &r : rows) {
        float *v;
        uint8_t *p;
        batch.add_row(r.month, &v, &p);
        v[0] = r.x;
        v[1] = r.inc;
        v[2] = r.seg;
        v[3] = r.ch;
        p[0] = r.p0;
        p[1] = r.p1;
    }
}

struct Encoded {
    size_t count;
    std::vector<float> steps, statics;
    std::vector<uint8_t> held;
    std::vector<int32_t> end_month;

    std::vector<float> step(size_t t, size_t b) const {
        const size_t W = 9;
        return std::vector<float>(steps.begin() + (t * count + b) * W, steps.begin() + (t * count + b + 1) * W);
    }
    std::vector<float> stat(size_t b) const {
        return std::vector<float>(statics.begin() + b * 6, statics.begin() + (b + 1) * 6);
    }
    std::vector<uint8_t> held_of(size_t b) const {
        return std::vector<uint8_t>(held.begin() + b * 2, held.begin() + (b + 1) * 2);
    }
};

Encoded encode(const Model &m, const HistoryBatch &batch, size_t first, size_t count, int32_t as_of) {
    FeatureEncoder enc(m);
    Encoded e;
    e.count = count;
    // Poisoned buffers: the encoder must overwrite every element.
    e.steps.assign(size_t(enc.window()) * count * enc.step_width(), 777.0f);
    e.statics.assign(count * enc.static_width(), 777.0f);
    e.held.assign(count * 2, 77);
    e.end_month.assign(count, -777);
    enc.encode(batch, first, count, as_of, e.steps.data(), e.statics.data(), e.held.data(), e.end_month.data());
    return e;
}

const std::vector<float> kZeroStep(9, 0.0f);

void expect_floats(const std::vector<float> &actual, const std::vector<float> &expected, const char *what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-6) << what << "[" << i << "]";
}

TEST(FeatureEncoder, Widths) {
    const Model m = make_model();
    FeatureEncoder enc(m);
    EXPECT_EQ(enc.window(), 3u);
    EXPECT_EQ(enc.step_width(), 9u);
    EXPECT_EQ(enc.static_width(), 6u);
}

TEST(FeatureEncoder, ExactlyTMonths) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    const float inc_e2 = float(std::exp(2.0) - 1.0);  // log1p -> 2 -> (2 - 1) / 0.5 = 2
    add_customer(batch, 1,
                 {{100, 12.0f, kNaN, 0, 0, 1, 0},
                  {101, kNaN, 3.0f, 1, 1, 1, 1},
                  {102, 1000.0f, inc_e2, 2, -1, 0, 1}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    expect_floats(e.step(0, 0), {1, 0, 0, 0, 1.0f, 0, 1, 0, 0}, "t0");  // first row: no adds
    expect_floats(e.step(1, 0), {1, 1, 0, 1, 0, 1, 0, 1, 0}, "t1");     // p1 added; x NULL
    expect_floats(e.step(2, 0), {0, 1, 0, 0, 45.0f, 0, 0, 0, 1}, "t2");  // x clipped to 100; ch unknown
    expect_floats(e.stat(0), {2.0f, 0, 0, 0, 1, 0}, "statics");          // from the last row
    EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 1}));
    EXPECT_EQ(e.end_month[0], 102);
}

TEST(FeatureEncoder, MoreThanTMonthsUsesOnlyTheLastT) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    // x = 10 + 2k encodes to k, so each step shows which row it came from.
    add_customer(batch, 1,
                 {{200, 10.0f, 5.0f, 2, 1, 1, 1},
                  {201, 12.0f, 5.0f, 2, 1, 0, 0},
                  {202, 14.0f, 5.0f, 2, 0, 1, 0},
                  {203, 16.0f, 5.0f, 2, 0, 1, 0},
                  {204, 18.0f, 0.0f, 1, 0, 1, 1}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    // Step 0 is month 202: p0 added relative to month 201, which exists though outside the window.
    expect_floats(e.step(0, 0), {1, 0, 1, 0, 2.0f, 0, 1, 0, 0}, "t0");
    expect_floats(e.step(1, 0), {1, 0, 0, 0, 3.0f, 0, 1, 0, 0}, "t1");
    expect_floats(e.step(2, 0), {1, 1, 0, 1, 4.0f, 0, 1, 0, 0}, "t2");
    expect_floats(e.stat(0), {-2.0f, 0, 0, 1, 0, 0}, "statics");  // inc 0: log1p(0) = 0 -> -2
    EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{1, 1}));
    EXPECT_EQ(e.end_month[0], 204);
}

TEST(FeatureEncoder, FewerThanTMonthsIsLeftPadded) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1, {{300, 10.0f, -5.0f, -1, 1, 0, 1}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    expect_floats(e.step(0, 0), kZeroStep, "t0");
    expect_floats(e.step(1, 0), kZeroStep, "t1");
    // The only row: p1 held but not "added" (no month before it).
    expect_floats(e.step(2, 0), {0, 1, 0, 0, 0.0f, 0, 0, 1, 0}, "t2");
    // inc -5 clipped to 0 -> -2; seg code -1 -> unknown slot.
    expect_floats(e.stat(0), {-2.0f, 0, 0, 0, 0, 1}, "statics");
    EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 1}));
    EXPECT_EQ(e.end_month[0], 300);
}

TEST(FeatureEncoder, TwoMonthsPadOneStep) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1, {{300, 12.0f, 0.0f, 0, 0, 0, 0}, {301, 14.0f, 0.0f, 0, 0, 1, 0}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    expect_floats(e.step(0, 0), kZeroStep, "t0");
    expect_floats(e.step(1, 0), {0, 0, 0, 0, 1.0f, 0, 1, 0, 0}, "t1");
    expect_floats(e.step(2, 0), {1, 0, 1, 0, 2.0f, 0, 1, 0, 0}, "t2");
}

TEST(FeatureEncoder, GapMonthIsAZeroStepAndBreaksAdds) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1, {{400, 14.0f, 0.0f, 0, 0, 0, 0}, {402, 8.0f, 0.0f, 0, 1, 1, 1}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    expect_floats(e.step(0, 0), {0, 0, 0, 0, 2.0f, 0, 1, 0, 0}, "t0 (month 400)");
    expect_floats(e.step(1, 0), kZeroStep, "t1 (month 401, absent)");
    // Month 402 holds both products, but the month before is absent: no adds.
    expect_floats(e.step(2, 0), {1, 1, 0, 0, -1.0f, 0, 0, 1, 0}, "t2 (month 402)");
    EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{1, 1}));
}

TEST(FeatureEncoder, AddedOnlyWhenHeldNowAndNotBefore) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    // p0: 0 -> 1 -> 1 (added once); p1: 1 -> 0 -> 1 (dropped, then added again).
    add_customer(batch, 1,
                 {{500, 10.0f, 0.0f, 0, 0, 0, 1}, {501, 10.0f, 0.0f, 0, 0, 1, 0}, {502, 10.0f, 0.0f, 0, 0, 1, 1}});
    const Encoded e = encode(m, batch, 0, 1, -1);
    expect_floats(e.step(0, 0), {0, 1, 0, 0, 0, 0, 1, 0, 0}, "t0");
    expect_floats(e.step(1, 0), {1, 0, 1, 0, 0, 0, 1, 0, 0}, "t1");
    expect_floats(e.step(2, 0), {1, 1, 0, 1, 0, 0, 1, 0, 0}, "t2");
}

TEST(FeatureEncoder, AsOfMonthCutsLaterRows) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1,
                 {{600, 12.0f, 0.0f, 0, 0, 1, 0},
                  {601, 14.0f, 3.0f, 1, 1, 0, 1},
                  {602, 16.0f, 0.0f, 2, 0, 1, 1},
                  {603, 18.0f, 0.0f, 2, 0, 1, 1}});
    {
        const Encoded e = encode(m, batch, 0, 1, 601);
        expect_floats(e.step(0, 0), kZeroStep, "t0 (month 599)");
        expect_floats(e.step(1, 0), {1, 0, 0, 0, 1.0f, 0, 1, 0, 0}, "t1 (month 600)");
        expect_floats(e.step(2, 0), {0, 1, 0, 1, 2.0f, 0, 0, 1, 0}, "t2 (month 601)");
        // Statics from month 601: inc 3 -> (log1p(3) - 1) / 0.5; seg b.
        const float inc = float((std::log1p(3.0) - 1.0) / 0.5);
        expect_floats(e.stat(0), {inc, 0, 0, 1, 0, 0}, "statics");
        EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 1}));
        EXPECT_EQ(e.end_month[0], 601);
    }
    {
        // as_of beyond the data: the window ends at 605; months 604 and 605 are absent.
        const Encoded e = encode(m, batch, 0, 1, 605);
        expect_floats(e.step(0, 0), {1, 1, 0, 0, 4.0f, 0, 1, 0, 0}, "t0 (month 603)");
        expect_floats(e.step(1, 0), kZeroStep, "t1 (month 604)");
        expect_floats(e.step(2, 0), kZeroStep, "t2 (month 605)");
        EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 0}));  // nothing held in an absent month
        expect_floats(e.stat(0), {-2.0f, 0, 0, 0, 1, 0}, "statics from month 603");
        EXPECT_EQ(e.end_month[0], 605);
    }
    {
        // as_of before the first row: nothing at all.
        const Encoded e = encode(m, batch, 0, 1, 599);
        for (size_t t = 0; t < 3; ++t) expect_floats(e.step(t, 0), kZeroStep, "step");
        expect_floats(e.stat(0), std::vector<float>(6, 0.0f), "statics");
        EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 0}));
        EXPECT_EQ(e.end_month[0], 599);
    }
}

TEST(FeatureEncoder, CustomerWithoutRows) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1, {});
    const Encoded e = encode(m, batch, 0, 1, -1);
    for (size_t t = 0; t < 3; ++t) expect_floats(e.step(t, 0), kZeroStep, "step");
    expect_floats(e.stat(0), std::vector<float>(6, 0.0f), "statics");
    EXPECT_EQ(e.held_of(0), (std::vector<uint8_t>{0, 0}));
    EXPECT_EQ(e.end_month[0], 0);
}

TEST(FeatureEncoder, BatchLayoutIsTimeMajorAndRespectsFirst) {
    const Model m = make_model();
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 10, {{700, 12.0f, 0.0f, 0, 0, 1, 0}});                                  // x -> 1
    add_customer(batch, 11, {{700, 14.0f, 0.0f, 1, 1, 0, 1}, {701, 16.0f, 0.0f, 2, 0, 1, 1}});  // 2, 3
    add_customer(batch, 12, {{650, 18.0f, kNaN, -1, 0, 1, 1}});                                 // 4
    const Encoded all = encode(m, batch, 0, 3, -1);
    expect_floats(all.step(2, 0), {1, 0, 0, 0, 1.0f, 0, 1, 0, 0}, "c10 t2");
    expect_floats(all.step(1, 1), {0, 1, 0, 0, 2.0f, 0, 0, 1, 0}, "c11 t1");
    expect_floats(all.step(2, 1), {1, 1, 1, 0, 3.0f, 0, 1, 0, 0}, "c11 t2");
    expect_floats(all.step(2, 2), {1, 1, 0, 0, 4.0f, 0, 1, 0, 0}, "c12 t2");
    expect_floats(all.step(0, 0), kZeroStep, "c10 t0");
    expect_floats(all.step(0, 1), kZeroStep, "c11 t0");
    expect_floats(all.step(1, 2), kZeroStep, "c12 t1");
    expect_floats(all.stat(1), {-2.0f, 0, 0, 0, 1, 0}, "c11 statics");
    expect_floats(all.stat(2), {0.0f, 1, 0, 0, 0, 1}, "c12 statics: inc NULL, seg unknown");
    EXPECT_EQ(all.end_month, (std::vector<int32_t>{700, 701, 650}));

    // Customers 11 and 12 alone: the same encodings at batch positions 0 and 1.
    const Encoded sub = encode(m, batch, 1, 2, -1);
    for (size_t t = 0; t < 3; ++t) {
        expect_floats(sub.step(t, 0), all.step(t, 1), "sub c11");
        expect_floats(sub.step(t, 1), all.step(t, 2), "sub c12");
    }
    expect_floats(sub.stat(0), all.stat(1), "sub statics");
    EXPECT_EQ(sub.held_of(1), (std::vector<uint8_t>{1, 1}));
    EXPECT_EQ(sub.end_month, (std::vector<int32_t>{701, 650}));
}

TEST(FeatureEncoder, NumericEncoding) {
    const Model m = make_model();
    FeatureEncoder enc(m);
    const FeatureSpec &x = m.features[0];
    const FeatureSpec &inc = m.features[1];
    float out[3];
    auto run = [&](const FeatureSpec &f, float raw) {
        out[0] = out[1] = out[2] = 555.0f;
        enc.encode_feature(f, raw, out);
    };
    run(x, 13.0f);
    EXPECT_FLOAT_EQ(out[0], 1.5f);
    EXPECT_EQ(out[1], 0.0f);
    EXPECT_EQ(out[2], 555.0f);  // width 2: nothing written beyond
    run(x, -7.0f);              // clipped to 0
    EXPECT_FLOAT_EQ(out[0], -5.0f);
    run(x, 250.0f);  // clipped to 100
    EXPECT_FLOAT_EQ(out[0], 45.0f);
    run(x, kNaN);
    EXPECT_EQ(out[0], 0.0f);
    EXPECT_EQ(out[1], 1.0f);
    run(inc, 3.0f);
    EXPECT_NEAR(out[0], (std::log1p(3.0) - 1.0) / 0.5, 1e-6);
    EXPECT_EQ(out[1], 0.0f);
    run(inc, 2e6f);  // clipped to 1e6 before log1p
    EXPECT_NEAR(out[0], (std::log1p(1e6) - 1.0) / 0.5, 1e-5);
    run(inc, -1.0f);
    EXPECT_NEAR(out[0], -2.0f, 1e-6);

    FeatureSpec no_ind = x;
    no_ind.missing_indicator = false;
    run(no_ind, kNaN);
    EXPECT_EQ(out[0], 0.0f);
    EXPECT_EQ(out[1], 555.0f);  // width 1
    run(no_ind, 16.0f);
    EXPECT_FLOAT_EQ(out[0], 3.0f);
    EXPECT_EQ(out[1], 555.0f);

    // Log1p of a negative raw value whose clip range allows it: log1p(max(x, 0)).
    FeatureSpec neg = inc;
    neg.clip_min = -100.0f;
    run(neg, -50.0f);
    EXPECT_NEAR(out[0], -2.0f, 1e-6);
}

TEST(FeatureEncoder, CategoricalEncoding) {
    const Model m = make_model();
    FeatureEncoder enc(m);
    const FeatureSpec &seg = m.features[2];  // {a, b, c} + unknown
    float out[5];
    auto run = [&](float code) {
        for (float &o : out) o = 555.0f;
        enc.encode_feature(seg, code, out);
        return std::vector<float>(out, out + 5);
    };
    EXPECT_EQ(run(0), (std::vector<float>{1, 0, 0, 0, 555}));
    EXPECT_EQ(run(1), (std::vector<float>{0, 1, 0, 0, 555}));
    EXPECT_EQ(run(2), (std::vector<float>{0, 0, 1, 0, 555}));
    EXPECT_EQ(run(-1), (std::vector<float>{0, 0, 0, 1, 555}));
    EXPECT_EQ(run(3), (std::vector<float>{0, 0, 0, 1, 555}));  // == vocabulary size
    EXPECT_EQ(run(99), (std::vector<float>{0, 0, 0, 1, 555}));
    EXPECT_EQ(run(-7), (std::vector<float>{0, 0, 0, 1, 555}));
    EXPECT_EQ(seg.code_of("c"), 2);
    EXPECT_EQ(seg.code_of("d"), -1);

    FeatureSpec empty;
    empty.column = "e";
    empty.kind = FeatureKind::Categorical;
    float one[2] = {555.0f, 555.0f};
    enc.encode_feature(empty, 0, one);
    EXPECT_EQ(one[0], 1.0f);  // only the unknown slot exists
    EXPECT_EQ(one[1], 555.0f);
}

TEST(FeatureEncoder, WithoutProductAdds) {
    Model m = make_model();
    m.include_product_adds = false;
    FeatureEncoder enc(m);
    ASSERT_EQ(enc.step_width(), 7u);
    HistoryBatch batch;
    batch.reset(4, 2);
    add_customer(batch, 1, {{800, 12.0f, 0.0f, 0, 1, 0, 0}, {801, 14.0f, 0.0f, 0, 1, 1, 0}});
    std::vector<float> steps(3 * 7, 777.0f), statics(6);
    std::vector<uint8_t> held(2);
    int32_t end = 0;
    enc.encode(batch, 0, 1, -1, steps.data(), statics.data(), held.data(), &end);
    expect_floats(std::vector<float>(steps.begin() + 14, steps.end()), {1, 0, 2.0f, 0, 0, 1, 0}, "t2");
    expect_floats(std::vector<float>(steps.begin() + 7, steps.begin() + 14), {0, 0, 1.0f, 0, 0, 1, 0}, "t1");
}

TEST(FeatureEncoder, MismatchedBatchShapeThrows) {
    const Model m = make_model();
    FeatureEncoder enc(m);
    HistoryBatch batch;
    batch.reset(3, 2);  // one feature short
    batch.begin_customer(1);
    std::vector<float> steps(27), statics(6);
    std::vector<uint8_t> held(2);
    int32_t end = 0;
    EXPECT_THROW(enc.encode(batch, 0, 1, -1, steps.data(), statics.data(), held.data(), &end), Error);
}

TEST(FeatureEncoder, IsFiniteValue) {
    EXPECT_TRUE(is_finite_value(1.5f));
    EXPECT_FALSE(is_finite_value(kNaN));
    EXPECT_FALSE(is_finite_value(std::numeric_limits<float>::infinity()));
}

}  // namespace
