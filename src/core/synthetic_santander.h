// A deterministic, seedable generator of Santander-shaped monthly snapshots with planted,
// learnable signal (docs/generated-data.md lists the rules and the measured rates).
//
// Every draw comes from a counter-based hash of (seed, customer index, month, purpose), so a
// customer's rows depend only on the seed, the customer index and the window; customers can be
// generated in any order or in parallel chunks and the output is the same on every platform
// (no std:: random distributions).
//
// Missing values in SyntheticRow: char fields are 0, string fields are nullptr, integer fields
// are -1, renta is NaN. Most fields are missing only in the rare "blank demographics" rows
// (as in the real file, where ~0.2% of rows have every customer field blank or NA but carry
// product flags); sexo, cod_prov, renta, segmento and canal_entrada are also missing on their own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <vector>

namespace recsys {

struct SyntheticRow {
    int32_t month;                   // month index = year*12 + (month-1); the snapshot date is the 28th
    int64_t ncodpers;
    char ind_empleado;               // 'N' mostly, 'A','B','F','P' rarely; 0 when missing
    const char *pais_residencia;     // "ES" mostly; nullptr when missing
    char sexo;                       // 'H','V', or 0 when missing
    int32_t age;                     // -1 when missing
    int32_t fecha_alta_month;        // month index of joining, -1 when missing
    int32_t fecha_alta_day;          // 1..28, 0 when missing
    int32_t ind_nuevo;               // 1 during the first 6 months, -1 when missing
    int32_t antiguedad;              // tenure in months, -1 when missing
    int32_t indrel;                  // 1 or 99, -1 when missing
    char tiprel_1mes;                // 'A' or 'I', 0 when missing
    char indresi, indext;            // 'S'/'N', 0 when missing
    const char *canal_entrada;       // "KHE","KAT","KFC",...; nullptr when missing
    int32_t cod_prov;                // 1..52, -1 missing
    int32_t ind_actividad_cliente;   // 0/1, -1 when missing
    double renta;                    // NaN when missing (~20% of customers); a whole number of cents
    const char *segmento;            // "01 - TOP","02 - PARTICULARES","03 - UNIVERSITARIO", nullptr when missing
    uint8_t products[24];            // 0/1 in santander_schema.h order
};

// The numeric customer columns a planted shift can scale.
enum class PlantedColumn { None, Renta, Age, Antiguedad };

// A change planted into the data from one month on, for one segment (or every customer): data
// for testing drift checks and the promotion gate (docs/generated-data.md, "Planted changes").
// Deterministic like the rest; without planted changes (the default) the output is
// bit-identical to a generator without this feature. A row "matches" when its month is
// from_month or later and its customer is in `segment` that month (segment_at(month); customers
// whose segment is missing never match a segment); segment -1 matches every customer. A change
// has at least one of swap, uptake and shift.
struct PlantedChange {
    int32_t from_month = 0;        // month index (year*12 + month-1)
    int32_t segment = -1;          // 0 "01 - TOP", 1 "02 - PARTICULARES", 2 "03 - UNIVERSITARIO"; -1: everyone
    // Swap (output only): in matching rows the flags of products swap_a and swap_b (santander_schema.h
    // order) are exchanged. The dynamics are untouched: a model trained on these rows learns the
    // segment's behaviour of one product under the other's name.
    int32_t swap_a = -1, swap_b = -1;
    // Uptake (dynamics): in matching months the monthly add hazard of uptake_product (first add and
    // re-add, after the sequence rules) is multiplied by uptake_factor (> 0), still capped at 0.85.
    // Later holdings and activity of matching customers follow from it; every other customer's
    // rows, and every row before from_month, are unchanged.
    int32_t uptake_product = -1;
    double uptake_factor = 1.0;
    // Shift (output only): in matching rows a numeric column is multiplied by shift_factor (> 0):
    // renta rounded to whole cents, age and antiguedad to whole numbers; missing values stay missing.
    PlantedColumn shift_column = PlantedColumn::None;
    double shift_factor = 1.0;
};

struct SyntheticConfig {
    uint64_t seed = 42;
    int32_t first_month = 2015 * 12 + 0;  // January 2015
    int32_t months = 17;
    // Share of rows whose customer fields are all blank/NA (the real file: ~0.2%). Set to 0 for
    // data without these rows.
    double blank_demographics_rate = 0.002;
    // Changes planted into the data, applied in this order (empty: none).
    std::vector<PlantedChange> planted;
};

// "01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO" -> 0, 1, 2; -1 for anything else.
int32_t synthetic_segment_index(const char *segmento);
// The index of a product flag column ("ind_cco_fin_ult1" -> 2) in santander_schema.h order; -1 when unknown.
int32_t synthetic_product_index(const char *column);

// Per-row probabilities, under the generator's own (partly latent) state, that each product is
// added in that row's month: 0 for products held the month before and for a customer's first
// row. Ranking by these is the Bayes-optimal recommender for the generated data.
using AddProbabilities = std::array<float, 24>;

class SyntheticSantander {
public:
    explicit SyntheticSantander(SyntheticConfig config);

    const SyntheticConfig &config() const { return config_; }

    // All snapshots of customer number `index` (0-based), ascending by month. Deterministic:
    // depends only on (seed, index, first_month, months, blank_demographics_rate).
    // ncodpers = 15889 + index. Customers may join after first_month (then they have fewer
    // rows) and rarely they leave; every customer has at least one row (out is replaced).
    void customer(int64_t index, std::vector<SyntheticRow> &out) const;
    // Same rows, plus one AddProbabilities per row when add_probability is not null.
    void customer(int64_t index, std::vector<SyntheticRow> &out, std::vector<AddProbabilities> *add_probability) const;

    static constexpr int64_t kFirstNcodpers = 15889;

private:
    SyntheticConfig config_;
};

// Province name for cod_prov 1..52 as written in the Kaggle file's nomprov ("MADRID",
// "CORUÑA, A", ...); nullptr otherwise.
const char *santander_province_name(int32_t cod_prov);

// Writes rows in the exact Kaggle train_ver2.csv format: the header with the 48 quoted names,
// dirty formatting (age as " 35", antiguedad right-padded to width 7, " NA"/"NA" for missing,
// empty renta when missing, quoted nomprov, " 0"/" 1" for ind_nomina_ult1/ind_nom_pens_ult1).
// Columns that the clean relation does not keep are derived: ult_fec_cli_1t is a date in the
// month when indrel is 99 (else empty), indrel_1mes is "1" or "1.0", conyuemp is empty, indfall
// is "N", tipodom is " 1".
extern const char kKaggleCsvHeader[];
void write_kaggle_csv_header(std::ostream &out);
void write_kaggle_csv_row(std::ostream &out, const SyntheticRow &row);
// Formats one row, with its trailing '\n', into buffer (at least kKaggleCsvRowMax bytes);
// returns the length. The fast path for bulk writers.
constexpr size_t kKaggleCsvRowMax = 1024;
size_t format_kaggle_csv_row(const SyntheticRow &row, char *buffer);

}  // namespace recsys
