#include "feature_fitting.h"

#include <cmath>
#include <cstdio>

#include "guard.h"

namespace recsys::pg {

namespace {

std::string float_literal(float v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", double(v));
    return buf;
}

// The SQL twin of FeatureEncoder::encode_feature's clip and transform, for the statistics only.
std::string transformed(const FeatureSpec &f) {
    std::string x = "least(greatest((" + quote_ident(f.column) + ")::float8, " + float_literal(f.clip_min) + "), " +
                    float_literal(f.clip_max) + ")";
    if (f.transform == NumericTransform::Log1p) x = "ln(1 + greatest(" + x + ", 0))";
    return x;
}

}  // namespace

void fit_feature_statistics(Model &model, const SourceReader &reader, int32_t until_month) {
    std::string where;
    if (until_month >= 0) {
        const DateADT until = date_of_month(until_month);
        const std::string literal = pg_call([&] {
            return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(until)));
        });
        where = " WHERE (" + reader.month_column_sql() + ")::date <= '" + literal + "'::date";
    }
    std::string select;
    for (const auto &f : model.features) {
        if (f.kind != FeatureKind::Numeric) continue;
        if (!select.empty()) select += ", ";
        select += "avg(" + transformed(f) + "), stddev_pop(" + transformed(f) + ")";
    }
    if (!select.empty()) {
        const std::string sql = "SELECT " + select + " FROM " + reader.relation_name() + where;
        std::vector<double> stats;
        pg_call([&] {
            if (SPI_execute(sql.c_str(), true, 1) != SPI_OK_SELECT) elog(ERROR, "feature statistics query failed");
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
        const std::string col = "(" + quote_ident(f.column) + ")::text";
        const std::string sql = "SELECT " + col + " FROM " + reader.relation_name() + where +
                                (where.empty() ? " WHERE " : " AND ") + col + " IS NOT NULL GROUP BY 1 " +
                                "ORDER BY count(*) DESC, 1 LIMIT " + std::to_string(kMaxFittedVocabulary);
        f.vocabulary.clear();
        pg_call([&] {
            if (SPI_execute(sql.c_str(), true, 0) != SPI_OK_SELECT) elog(ERROR, "vocabulary query failed");
            for (uint64_t r = 0; r < SPI_processed; ++r)
                f.vocabulary.emplace_back(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
        });
    }
    model.index();
}

}  // namespace recsys::pg
