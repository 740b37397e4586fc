// recsys.store_recommendations(model, k, as_of) -> bigint: replaces a model's rows in
// recsys.recommendations with recsys.score_all(model, k, as_of => as_of), read through an SPI
// cursor and written in batches by RecommendationWriter, the writer that incremental scoring
// uses too. Behind refresh_recommendations(), which takes the model's writer lock first.
// score_all stays a set-returning function (however it computes), so this reads it as a query.
#include <string>

#include "guard.h"
#include "recommendation_writer.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

// Rows per cursor fetch, and per write batch.
constexpr long kFetchRows = 1024;

}  // namespace

RECSYS_FUNCTION(recsys_store_recommendations) {
    // score_all() scores nothing for a NULL model or k: nothing to replace.
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_INT64(0);
    const std::string model = text_arg(fcinfo, 0);
    const int32_t k = PG_GETARG_INT32(1);
    const bool has_as_of = !PG_ARGISNULL(2);
    const DateADT as_of = has_as_of ? PG_GETARG_DATEADT(2) : 0;
    spi_connect();
    RecommendationWriter out(model, RecommendationWriter::Rows::Recommendations, 0, 0, size_t(kFetchRows));
    // Rows are updated in place; finish() deletes those of customers score_all() no longer
    // returns. One transaction: readers see the old recommendations until the new ones commit.
    out.replace_model_rows();
    const char *model_name = model.c_str();
    Portal portal = pg_call([&] {
        Datum args[3] = {CStringGetTextDatum(model_name), Int32GetDatum(k), DateADTGetDatum(as_of)};
        Oid types[3] = {TEXTOID, INT4OID, DATEOID};
        const char nulls[3] = {' ', ' ', has_as_of ? ' ' : 'n'};
        Portal p = SPI_cursor_open_with_args(
            nullptr,
            "SELECT s.customer_id, s.model_version, s.products, s.scores "
            "FROM recsys.score_all($1, $2, as_of => $3) s",
            3, types, args, nulls, true, 0);
        if (!p) elog(ERROR, "opening the scoring cursor failed");
        return p;
    });
    for (;;) {
        SPITupleTable *table = nullptr;
        const uint64_t rows = pg_call([&] {
            SPI_cursor_fetch(portal, true, kFetchRows);
            table = SPI_tuptable;
            return SPI_processed;
        });
        if (rows == 0) break;
        for (uint64_t r = 0; r < rows; ++r) {
            Datum v[4];
            bool n[4];
            pg_call([&] {
                for (int i = 0; i < 4; ++i) v[i] = SPI_getbinval(table->vals[r], table->tupdesc, i + 1, &n[i]);
            });
            if (n[0] || n[1] || n[2] || n[3])
                throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "recsys.score_all() returned a row with a NULL column");
            out.add(DatumGetInt64(v[0]), DatumGetInt32(v[1]), v[2], v[3]);
        }
        pg_call([&] { SPI_freetuptable(table); });
        check_for_interrupts();
    }
    pg_call([&] { SPI_cursor_close(portal); });
    const uint64_t written = out.finish();
    spi_finish();
    PG_RETURN_INT64(int64_t(written));
}
