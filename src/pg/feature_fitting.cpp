#include "feature_fitting.h"

#include <cmath>
#include <cstdio>

#include "guard.h"
#include "model_text.h"
#include "sql_text.h"

namespace recsys::pg {

namespace {

std::string float_literal(float v) {
    char buf[64];
    snprintf(buf, sizeof buf, "'%.9g'::pg_catalog.float8", double(v));
    return buf;
}

// The SQL twin of FeatureEncoder::encode_feature's clip and transform, for the statistics only.
// (LEAST and GREATEST are SQL syntax, not functions a search_path could replace.) A NULL stays
// NULL, so that avg and stddev_pop see only the values the encoder standardises: GREATEST and
// LEAST ignore NULL arguments, and GREATEST(NULL, clip_min) would count every NULL as clip_min.
std::string transformed(const FeatureSpec &f) {
    const std::string value = sql::cast(quote_ident(f.column), "float8");
    std::string x = "LEAST(GREATEST(" + value + ", " + float_literal(f.clip_min) + "), " + float_literal(f.clip_max) + ")";
    if (f.transform == NumericTransform::Log1p)
        x = sql::call("ln", float_literal(1.0f) + sql::op("+") + "GREATEST(" + x + ", " + float_literal(0.0f) + ")");
    return "CASE WHEN " + value + " IS NULL THEN NULL ELSE " + x + " END";
}

}  // namespace

void fit_feature_statistics(Model &model, const SourceReader &reader, int32_t until_month) {
    std::string where;
    if (until_month >= 0) where = " WHERE " + reader.month_sql() + sql::op("<") + sql::month_start(until_month + 1);
    std::string select;
    for (const auto &f : model.features) {
        if (f.kind != FeatureKind::Numeric) continue;
        if (!select.empty()) select += ", ";
        select += sql::call("avg", transformed(f)) + ", " + sql::call("stddev_pop", transformed(f));
    }
    if (!select.empty()) {
        const std::string stats_sql = "SELECT " + select + " FROM " + reader.relation_name() + where;
        const char *stats_text = stats_sql.c_str();
        std::vector<double> stats;
        pg_call([&] {
            if (SPI_execute(stats_text, true, 1) != SPI_OK_SELECT) elog(ERROR, "feature statistics query failed");
            for (int i = 1; i <= SPI_tuptable->tupdesc->natts; ++i) {
                bool isnull;
                Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i, &isnull);
                stats.push_back(isnull ? NAN : DatumGetFloat8(d));  // avg and stddev_pop of float8 are float8
            }
        });
        size_t i = 0;
        for (auto &f : model.features) {
            if (f.kind != FeatureKind::Numeric) continue;
            const double mean = stats[i], sd = stats[i + 1];
            i += 2;
            // A column that is all NULL or constant carries no signal: encode it as 0.
            f.mean = std::isfinite(mean) ? float(mean) : 0.0f;
            f.stddev = std::isfinite(sd) && sd > 1e-6 ? float(sd) : 1.0f;
        }
    }
    for (auto &f : model.features) {
        if (f.kind != FeatureKind::Categorical) continue;
        const std::string col = sql::cast(quote_ident(f.column), "text");
        const std::string vocabulary_sql = "SELECT " + col + " FROM " + reader.relation_name() + where +
                                           (where.empty() ? " WHERE " : " AND ") + col + " IS NOT NULL GROUP BY 1 " +
                                           "ORDER BY " + sql::call("count", "*") + " DESC, 1 LIMIT " +
                                           std::to_string(kMaxFittedVocabulary);
        const char *vocabulary_text = vocabulary_sql.c_str();
        std::vector<std::string> values;
        pg_call([&] {
            if (SPI_execute(vocabulary_text, true, 0) != SPI_OK_SELECT) elog(ERROR, "vocabulary query failed");
            for (uint64_t r = 0; r < SPI_processed; ++r)
                values.emplace_back(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
        });
        // A value that is not model text (a control character, say) cannot be stored in a
        // model; left out of the vocabulary, it is encoded as an unseen category.
        f.vocabulary.clear();
        for (auto &v : values)
            if (is_valid_text(v)) f.vocabulary.push_back(std::move(v));
    }
    model.index();
}

}  // namespace recsys::pg
