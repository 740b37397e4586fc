#include "core/synthetic_santander.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/history.h"
#include "core/santander_schema.h"

namespace {

using recsys::SyntheticConfig;
using recsys::SyntheticRow;
using recsys::SyntheticSantander;

constexpr int kCco = 2, kCtju = 5, kNomina = 21, kNomPens = 22;

bool same_cstr(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return std::strcmp(a, b) == 0;
}

bool same_row(const SyntheticRow &a, const SyntheticRow &b) {
    bool renta_same = (std::isnan(a.renta) && std::isnan(b.renta)) || a.renta == b.renta;
    return a.month == b.month && a.ncodpers == b.ncodpers && a.ind_empleado == b.ind_empleado &&
           same_cstr(a.pais_residencia, b.pais_residencia) && a.sexo == b.sexo && a.age == b.age &&
           a.fecha_alta_month == b.fecha_alta_month && a.fecha_alta_day == b.fecha_alta_day &&
           a.ind_nuevo == b.ind_nuevo && a.antiguedad == b.antiguedad && a.indrel == b.indrel &&
           a.tiprel_1mes == b.tiprel_1mes && a.indresi == b.indresi && a.indext == b.indext &&
           same_cstr(a.canal_entrada, b.canal_entrada) && a.cod_prov == b.cod_prov &&
           a.ind_actividad_cliente == b.ind_actividad_cliente && renta_same && same_cstr(a.segmento, b.segmento) &&
           std::memcmp(a.products, b.products, sizeof a.products) == 0;
}

std::vector<std::vector<SyntheticRow>> generate(const SyntheticConfig &cfg, int64_t n, int64_t first = 0) {
    SyntheticSantander gen(cfg);
    std::vector<std::vector<SyntheticRow>> all(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) gen.customer(first + i, all[static_cast<size_t>(i)]);
    return all;
}

// Splits one CSV line, honoring double quotes ("CORUÑA, A" is one field). Quotes are removed.
std::vector<std::string> split_csv(const std::string &line) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                fields.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                fields.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    return fields;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(' ');
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

// ---------------------------------------------------------------------------------------------

TEST(SyntheticSantander, SameSeedSameRows) {
    SyntheticConfig cfg;
    auto a = generate(cfg, 300);
    auto b = generate(cfg, 300);
    for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a[i].size(), b[i].size());
        for (size_t r = 0; r < a[i].size(); ++r) EXPECT_TRUE(same_row(a[i][r], b[i][r])) << i << " " << r;
    }
}

TEST(SyntheticSantander, OrderAndChunkIndependent) {
    SyntheticConfig cfg;
    SyntheticSantander gen(cfg);
    std::vector<SyntheticRow> forward, alone;
    std::vector<std::vector<SyntheticRow>> seq;
    for (int64_t i = 999; i >= 900; --i) {  // descending order, one generator
        gen.customer(i, forward);
        seq.push_back(forward);
    }
    SyntheticSantander other(cfg);
    for (int64_t i = 900; i < 1000; ++i) {
        other.customer(i, alone);
        const auto &f = seq[static_cast<size_t>(999 - i)];
        ASSERT_EQ(alone.size(), f.size());
        for (size_t r = 0; r < alone.size(); ++r) EXPECT_TRUE(same_row(alone[r], f[r]));
    }
}

TEST(SyntheticSantander, DifferentSeedDiffers) {
    SyntheticConfig a, b;
    b.seed = 43;
    auto ra = generate(a, 200), rb = generate(b, 200);
    size_t differing = 0;
    for (size_t i = 0; i < ra.size(); ++i) {
        if (ra[i].size() != rb[i].size() || !same_row(ra[i].back(), rb[i].back())) ++differing;
    }
    EXPECT_GT(differing, 150u);
}

TEST(SyntheticSantander, ProbabilitiesDoNotChangeRows) {
    SyntheticConfig cfg;
    SyntheticSantander gen(cfg);
    std::vector<SyntheticRow> plain, with;
    std::vector<recsys::AddProbabilities> probs;
    for (int64_t i = 0; i < 200; ++i) {
        gen.customer(i, plain);
        gen.customer(i, with, &probs);
        ASSERT_EQ(plain.size(), with.size());
        ASSERT_EQ(probs.size(), with.size());
        for (size_t r = 0; r < plain.size(); ++r) {
            EXPECT_TRUE(same_row(plain[r], with[r]));
            for (int p = 0; p < 24; ++p) {
                EXPECT_GE(probs[r][p], 0.0f);
                EXPECT_LE(probs[r][p], 1.0f);
                if (r > 0 && with[r - 1].products[p]) {
                    EXPECT_EQ(probs[r][p], 0.0f);
                }
            }
        }
    }
}

TEST(SyntheticSantander, IdsAndMonths) {
    SyntheticConfig cfg;
    cfg.first_month = recsys::month_index(2015, 1);
    auto all = generate(cfg, 2000);
    size_t joiners = 0, leavers = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        const auto &rows = all[i];
        ASSERT_FALSE(rows.empty()) << i;
        for (size_t r = 0; r < rows.size(); ++r) {
            EXPECT_EQ(rows[r].ncodpers, SyntheticSantander::kFirstNcodpers + int64_t(i));
            EXPECT_GE(rows[r].month, cfg.first_month);
            EXPECT_LT(rows[r].month, cfg.first_month + cfg.months);
            if (r) {
                EXPECT_EQ(rows[r].month, rows[r - 1].month + 1);  // consecutive, ascending
            }
        }
        if (rows.front().month > cfg.first_month) ++joiners;
        if (rows.back().month < cfg.first_month + cfg.months - 1) ++leavers;
    }
    EXPECT_GT(joiners, 200u);   // ~35% join inside the window
    EXPECT_LT(joiners, 1000u);
    EXPECT_LT(leavers, 200u);   // rarely they leave
}

TEST(SyntheticSantander, ShorterWindow) {
    SyntheticConfig cfg;
    cfg.first_month = recsys::month_index(2016, 3);
    cfg.months = 1;
    auto all = generate(cfg, 500);
    for (const auto &rows : all) {
        ASSERT_EQ(rows.size(), 1u);
        EXPECT_EQ(rows[0].month, cfg.first_month);
    }
}

TEST(SyntheticSantander, ValueDomains) {
    SyntheticConfig cfg;
    auto all = generate(cfg, 5000);
    std::set<std::string> segs = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
    size_t rows = 0, renta_missing = 0, blank = 0;
    for (const auto &customer : all) {
        for (const auto &r : customer) {
            ++rows;
            for (int p = 0; p < 24; ++p) EXPECT_LE(r.products[p], 1);
            if (r.age < 0) {  // a blank-demographics row
                ++blank;
                EXPECT_EQ(r.sexo, 0);
                EXPECT_EQ(r.segmento, nullptr);
                EXPECT_EQ(r.cod_prov, -1);
                EXPECT_EQ(r.ind_actividad_cliente, -1);
                continue;
            }
            EXPECT_TRUE(std::strchr("NABFP", r.ind_empleado) && r.ind_empleado);
            ASSERT_NE(r.pais_residencia, nullptr);
            EXPECT_EQ(std::strlen(r.pais_residencia), 2u);
            EXPECT_TRUE(r.sexo == 0 || r.sexo == 'H' || r.sexo == 'V');
            EXPECT_LE(r.age, 120);
            EXPECT_LE(r.fecha_alta_month, r.month);
            EXPECT_GE(r.fecha_alta_day, 1);
            EXPECT_LE(r.fecha_alta_day, 28);
            EXPECT_EQ(r.antiguedad, r.month - r.fecha_alta_month);
            EXPECT_EQ(r.ind_nuevo, r.antiguedad < 6 ? 1 : 0);
            EXPECT_TRUE(r.indrel == 1 || r.indrel == 99);
            EXPECT_TRUE(r.tiprel_1mes == 'A' || r.tiprel_1mes == 'I');
            EXPECT_TRUE(r.indresi == 'S' || r.indresi == 'N');
            EXPECT_TRUE(r.indext == 'S' || r.indext == 'N');
            if (r.canal_entrada) {
                EXPECT_EQ(std::strlen(r.canal_entrada), 3u);
            }
            EXPECT_TRUE(r.cod_prov == -1 || (r.cod_prov >= 1 && r.cod_prov <= 52));
            EXPECT_TRUE(r.ind_actividad_cliente == 0 || r.ind_actividad_cliente == 1);
            if (std::isnan(r.renta)) ++renta_missing;
            else {
                EXPECT_GT(r.renta, 1000.0);
                EXPECT_NEAR(r.renta * 100.0, std::round(r.renta * 100.0), 1e-6);  // whole cents
            }
            if (r.segmento) {
                EXPECT_EQ(segs.count(r.segmento), 1u) << r.segmento;
            }
        }
    }
    double missing_share = double(renta_missing) / double(rows);
    EXPECT_GT(missing_share, 0.12);
    EXPECT_LT(missing_share, 0.28);
    EXPECT_GT(blank, 0u);
    EXPECT_LT(double(blank) / double(rows), 0.01);

    SyntheticConfig no_blank;
    no_blank.blank_demographics_rate = 0.0;
    for (const auto &customer : generate(no_blank, 2000))
        for (const auto &r : customer) EXPECT_GE(r.age, 0);
}

TEST(SyntheticSantander, Calibration) {
    SyntheticConfig cfg;
    auto all = generate(cfg, 20000);
    std::vector<double> pairs(size_t(cfg.months)), adders(size_t(cfg.months));
    double rows = 0, cco = 0, np_nonheld = 0, np_adds = 0, after_nomina = 0, after_nomina_np = 0;
    double ctju_rows = 0, ctju_old = 0;
    for (const auto &customer : all) {
        for (size_t r = 0; r < customer.size(); ++r) {
            const auto &row = customer[r];
            rows += 1;
            cco += row.products[kCco];
            if (row.products[kCtju] && row.age >= 0) {
                ctju_rows += 1;
                if (row.age >= 20) ctju_old += 1;
            }
            if (r == 0) continue;
            const auto &prev = customer[r - 1];
            size_t m = size_t(row.month - cfg.first_month);
            pairs[m] += 1;
            bool any = false;
            for (int p = 0; p < 24; ++p) any = any || (!prev.products[p] && row.products[p]);
            adders[m] += any;
            if (!prev.products[kNomPens]) {
                bool np_added = row.products[kNomPens] != 0;
                np_nonheld += 1;
                np_adds += np_added;
                // just added nomina: this month or last month
                bool nomina_now = !prev.products[kNomina] && row.products[kNomina];
                bool nomina_last = r >= 2 && !customer[r - 2].products[kNomina] && prev.products[kNomina];
                if (nomina_now || nomina_last) {
                    after_nomina += 1;
                    after_nomina_np += np_added;
                }
            }
        }
    }
    for (size_t m = 1; m < pairs.size(); ++m) {
        double share = adders[m] / pairs[m];
        EXPECT_GE(share, 0.02) << "month " << m;
        EXPECT_LE(share, 0.07) << "month " << m;
    }
    double cco_share = cco / rows;
    EXPECT_GE(cco_share, 0.50);
    EXPECT_LE(cco_share, 0.85);
    ASSERT_GT(after_nomina, 100);
    double lift = (after_nomina_np / after_nomina) / (np_adds / np_nonheld);
    EXPECT_GE(lift, 5.0) << "nom_pens add rate after nomina " << after_nomina_np / after_nomina << " overall "
                         << np_adds / np_nonheld;
    ASSERT_GT(ctju_rows, 100);
    EXPECT_EQ(ctju_old, 0);
}

// ---------------------------------------------------------------------------------------------
// CSV

const char *kRealSample = "/work/shared/data/santander/trainsubset.csv";

TEST(SyntheticSantanderCsv, HeaderMatchesKaggle) {
    std::ostringstream out;
    recsys::write_kaggle_csv_header(out);
    std::string header = out.str();
    ASSERT_FALSE(header.empty());
    EXPECT_EQ(header.back(), '\n');
    header.pop_back();
    auto names = split_csv(header);
    ASSERT_EQ(names.size(), 48u);
    EXPECT_EQ(names[0], "fecha_dato");
    EXPECT_EQ(names[23], "segmento");
    for (size_t p = 0; p < 24; ++p) EXPECT_EQ(names[24 + p], recsys::santander::kProductColumns[p]);

    std::ifstream real(kRealSample);
    if (!real) GTEST_SKIP() << kRealSample << " is absent; compared the names only";
    std::string first;
    std::getline(real, first);
    if (!first.empty() && first.back() == '\r') first.pop_back();
    EXPECT_EQ(header, first);
}

TEST(SyntheticSantanderCsv, RowsHave48FieldsAndRoundTrip) {
    SyntheticConfig cfg;
    cfg.blank_demographics_rate = 0.01;  // make sure blank rows are exercised
    SyntheticSantander gen(cfg);
    std::vector<SyntheticRow> rows;
    size_t checked = 0, with_comma = 0, blank = 0;
    for (int64_t i = 0; i < 3000; ++i) {
        gen.customer(i, rows);
        for (const auto &r : rows) {
            std::ostringstream out;
            recsys::write_kaggle_csv_row(out, r);
            std::string line = out.str();
            ASSERT_EQ(line.back(), '\n');
            line.pop_back();
            char buf[recsys::kKaggleCsvRowMax];
            size_t n = recsys::format_kaggle_csv_row(r, buf);
            ASSERT_EQ(std::string(buf, n - 1), line);
            auto f = split_csv(line);
            ASSERT_EQ(f.size(), 48u) << line;
            ++checked;
            // fecha_dato
            char date[32];
            std::snprintf(date, sizeof date, "%04d-%02d-28", r.month / 12, r.month % 12 + 1);
            EXPECT_EQ(f[0], date);
            EXPECT_EQ(std::stoll(f[1]), r.ncodpers);
            // age: " 35" / " NA", width 3 at least
            ASSERT_GE(f[5].size(), 3u);
            if (r.age < 0) {
                ++blank;
                EXPECT_EQ(f[5], " NA");
                EXPECT_EQ(f[8], "     NA");
                EXPECT_EQ(f[7], "NA");
                EXPECT_EQ(f[19], "NA");
                EXPECT_EQ(f[20], "");
                EXPECT_EQ(f[22], "");
                EXPECT_EQ(f[23], "");
            } else {
                EXPECT_EQ(std::stoi(trim(f[5])), r.age);
                EXPECT_EQ(f[8].size(), 7u);
                EXPECT_EQ(std::stoi(trim(f[8])), r.antiguedad);
                EXPECT_EQ(std::stoi(trim(f[7])), r.ind_nuevo);
                EXPECT_EQ(std::stoi(trim(f[9])), r.indrel);
                EXPECT_EQ(f[11] == "1" || f[11] == "1.0", true) << f[11];
                EXPECT_EQ(f[12], std::string(1, r.tiprel_1mes));
                EXPECT_EQ(std::stoi(trim(f[21])), r.ind_actividad_cliente);
                int y = 0, mo = 0, d = 0;
                ASSERT_EQ(std::sscanf(f[6].c_str(), "%d-%d-%d", &y, &mo, &d), 3);
                EXPECT_EQ(y * 12 + mo - 1, r.fecha_alta_month);
                EXPECT_EQ(d, r.fecha_alta_day);
                if (r.cod_prov > 0) {
                    EXPECT_EQ(std::stoi(trim(f[19])), r.cod_prov);
                    EXPECT_EQ(f[20], recsys::santander_province_name(r.cod_prov));
                    EXPECT_EQ(f[19].size(), 2u);
                    if (f[20].find(',') != std::string::npos) ++with_comma;
                } else {
                    EXPECT_EQ(f[19], "NA");
                    EXPECT_EQ(f[20], "");
                }
                if (std::isnan(r.renta)) {
                    EXPECT_EQ(f[22], "");
                } else {
                    EXPECT_EQ(std::strtod(f[22].c_str(), nullptr), r.renta) << f[22];  // exact round trip
                }
                EXPECT_EQ(f[23], r.segmento ? r.segmento : "");
                EXPECT_EQ(f[16], r.canal_entrada ? r.canal_entrada : "");
                EXPECT_EQ(f[4], r.sexo ? std::string(1, r.sexo) : "");
            }
            for (int p = 0; p < 24; ++p) {
                std::string want = (p == kNomina || p == kNomPens) ? " " : "";
                want += r.products[p] ? '1' : '0';
                EXPECT_EQ(f[24 + size_t(p)], want);
            }
        }
    }
    EXPECT_GT(checked, 30000u);
    EXPECT_GT(with_comma, 0u);  // "CORUÑA, A" and friends occur
    EXPECT_GT(blank, 0u);
}

TEST(SyntheticSantanderCsv, RealSampleParsesWithTheSameSplitter) {
    std::ifstream real(kRealSample);
    if (!real) GTEST_SKIP() << kRealSample << " is absent";
    std::string line;
    size_t n = 0;
    while (std::getline(real, line)) {
        ASSERT_EQ(split_csv(line).size(), 48u) << line;
        ++n;
    }
    EXPECT_GT(n, 1000u);
}

TEST(SyntheticSantanderCsv, ProvinceNames) {
    EXPECT_STREQ(recsys::santander_province_name(28), "MADRID");
    EXPECT_STREQ(recsys::santander_province_name(15), "CORUÑA, A");
    EXPECT_STREQ(recsys::santander_province_name(52), "MELILLA");
    EXPECT_EQ(recsys::santander_province_name(0), nullptr);
    EXPECT_EQ(recsys::santander_province_name(53), nullptr);
    EXPECT_EQ(recsys::santander_province_name(-1), nullptr);
}

// ---------------------------------------------------------------------------------------------
// The default output is pinned: a digest of every field (and the add probabilities) of 3,000
// customers, computed before planted changes existed. Planted changes must not move it.

uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const auto *b = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
uint64_t fnv_str(uint64_t h, const char *s) { return s ? fnv(h, s, std::strlen(s) + 1) : fnv(h, "\xff", 1); }

uint64_t digest(const SyntheticConfig &cfg, int64_t customers) {
    SyntheticSantander gen(cfg);
    std::vector<SyntheticRow> rows;
    std::vector<recsys::AddProbabilities> probs;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < customers; ++i) {
        gen.customer(i, rows, &probs);
        for (size_t r = 0; r < rows.size(); ++r) {
            const SyntheticRow &x = rows[r];
            h = fnv(h, &x.month, 4);
            h = fnv(h, &x.ncodpers, 8);
            h = fnv(h, &x.ind_empleado, 1);
            h = fnv_str(h, x.pais_residencia);
            h = fnv(h, &x.sexo, 1);
            h = fnv(h, &x.age, 4);
            h = fnv(h, &x.fecha_alta_month, 4);
            h = fnv(h, &x.fecha_alta_day, 4);
            h = fnv(h, &x.ind_nuevo, 4);
            h = fnv(h, &x.antiguedad, 4);
            h = fnv(h, &x.indrel, 4);
            h = fnv(h, &x.tiprel_1mes, 1);
            h = fnv(h, &x.indresi, 1);
            h = fnv(h, &x.indext, 1);
            h = fnv_str(h, x.canal_entrada);
            h = fnv(h, &x.cod_prov, 4);
            h = fnv(h, &x.ind_actividad_cliente, 4);
            h = fnv(h, &x.renta, 8);
            h = fnv_str(h, x.segmento);
            h = fnv(h, x.products, 24);
            h = fnv(h, probs[r].data(), sizeof(float) * 24);
        }
    }
    return h;
}

TEST(SyntheticSantanderPlanted, DefaultOutputUnchanged) {
    EXPECT_EQ(digest(SyntheticConfig{}, 3000), 0xc227475a9c71b3ccULL);
    // A change from a month after the window changes nothing either.
    SyntheticConfig cfg;
    recsys::PlantedChange later;
    later.from_month = cfg.first_month + cfg.months;
    later.uptake_product = 4;
    later.uptake_factor = 5;
    later.swap_a = 2;
    later.swap_b = 3;
    later.shift_column = recsys::PlantedColumn::Renta;
    later.shift_factor = 2;
    cfg.planted.push_back(later);
    EXPECT_EQ(digest(cfg, 3000), 0xc227475a9c71b3ccULL);
}

constexpr int kCno = 4, kEcue = 12, kViv = 20, kRecibo = 23;

bool blank_row(const SyntheticRow &r) { return r.age < 0 && r.indrel < 0 && r.ind_nuevo < 0; }

// Whether a default row is in the segment (false for blank rows, whose segment is not shown).
bool shows_segment(const SyntheticRow &r, const char *segment) { return !blank_row(r) && same_cstr(r.segmento, segment); }

// A config with one planted change from June 2015, to be filled in.
SyntheticConfig planted_config() {
    SyntheticConfig cfg;
    cfg.planted.emplace_back();
    cfg.planted[0].from_month = recsys::month_index(2015, 6);
    return cfg;
}

TEST(SyntheticSantanderPlanted, SwapExchangesTwoFlagsOfTheSegmentOnly) {
    SyntheticConfig cfg = planted_config();
    cfg.planted[0].segment = 2;
    cfg.planted[0].swap_a = kEcue;
    cfg.planted[0].swap_b = kViv;
    const auto base = generate(SyntheticConfig{}, 3000), planted = generate(cfg, 3000);
    size_t swapped = 0, differing = 0, unchanged = 0;
    for (size_t i = 0; i < base.size(); ++i) {
        ASSERT_EQ(base[i].size(), planted[i].size());
        for (size_t r = 0; r < base[i].size(); ++r) {
            const SyntheticRow &b = base[i][r], &p = planted[i][r];
            SyntheticRow expected = b;
            std::swap(expected.products[kEcue], expected.products[kViv]);
            if (b.month >= cfg.planted[0].from_month && shows_segment(b, "03 - UNIVERSITARIO")) {
                EXPECT_TRUE(same_row(p, expected)) << i << " " << r;
                ++swapped;
                if (b.products[kEcue] != b.products[kViv]) ++differing;
            } else if (b.month < cfg.planted[0].from_month || !blank_row(b)) {
                EXPECT_TRUE(same_row(p, b)) << i << " " << r;
                ++unchanged;
            } else {  // a blank row of the window: swapped when its customer is a student then
                EXPECT_TRUE(same_row(p, b) || same_row(p, expected)) << i << " " << r;
            }
        }
    }
    EXPECT_GT(swapped, 5000u);
    EXPECT_GT(differing, 300u);  // students hold ecue often, viv never
    EXPECT_GT(unchanged, 20000u);
}

TEST(SyntheticSantanderPlanted, ShiftScalesOneColumnOfTheSegmentOnly) {
    SyntheticConfig cfg = planted_config();
    cfg.planted[0].segment = 2;
    cfg.planted[0].shift_column = recsys::PlantedColumn::Renta;
    cfg.planted[0].shift_factor = 1.5;
    const auto base = generate(SyntheticConfig{}, 3000), planted = generate(cfg, 3000);
    size_t shifted = 0;
    for (size_t i = 0; i < base.size(); ++i) {
        ASSERT_EQ(base[i].size(), planted[i].size());
        for (size_t r = 0; r < base[i].size(); ++r) {
            const SyntheticRow &b = base[i][r], &p = planted[i][r];
            SyntheticRow expected = b;
            if (b.month >= cfg.planted[0].from_month && shows_segment(b, "03 - UNIVERSITARIO") && !std::isnan(b.renta)) {
                expected.renta = std::floor(std::floor(b.renta * 100.0 + 0.5) * 1.5 + 0.5) * 0.01;
                EXPECT_NEAR(p.renta / b.renta, 1.5, 1e-6);
                ++shifted;
            }
            EXPECT_TRUE(same_row(p, expected)) << i << " " << r;  // blank rows: renta missing, unchanged
        }
    }
    EXPECT_GT(shifted, 4000u);

    cfg.planted[0].segment = -1;  // everyone, age
    cfg.planted[0].shift_column = recsys::PlantedColumn::Age;
    cfg.planted[0].shift_factor = 2;
    const auto aged = generate(cfg, 500);
    for (size_t i = 0; i < aged.size(); ++i)
        for (size_t r = 0; r < aged[i].size(); ++r) {
            const SyntheticRow &b = base[i][r], &p = aged[i][r];
            SyntheticRow expected = b;
            if (b.month >= cfg.planted[0].from_month && b.age >= 0) expected.age = 2 * b.age;
            EXPECT_TRUE(same_row(p, expected)) << i << " " << r;
        }
}

TEST(SyntheticSantanderPlanted, UptakeMultipliesOneProductsAddsInTheSegment) {
    SyntheticConfig cfg = planted_config();
    cfg.planted[0].segment = 1;  // 02 - PARTICULARES
    cfg.planted[0].uptake_product = kCno;
    cfg.planted[0].uptake_factor = 3;
    constexpr int64_t n = 20000;
    SyntheticSantander base_gen{SyntheticConfig{}}, planted_gen{cfg};
    std::vector<SyntheticRow> b, p;
    std::vector<recsys::AddProbabilities> bp, pp;
    // Adds of cno and of every other product in matching rows (the row before not holding it).
    double base_adds = 0, planted_adds = 0, base_other = 0, planted_other = 0, base_exposure = 0, planted_exposure = 0;
    size_t identical_customers = 0, checked_probabilities = 0;
    for (int64_t i = 0; i < n; ++i) {
        base_gen.customer(i, b, &bp);
        planted_gen.customer(i, p, &pp);
        ASSERT_EQ(b.size(), p.size());
        bool ever_matches = false;
        for (size_t r = 0; r < b.size(); ++r) {
            if (b[r].month < cfg.planted[0].from_month) {
                EXPECT_TRUE(same_row(b[r], p[r])) << i << " " << r;  // nothing changes before from_month
                continue;
            }
            if (blank_row(b[r]) || shows_segment(b[r], "02 - PARTICULARES")) ever_matches = true;
            // Who the customer is never changes: only holdings and activity follow the uptake.
            SyntheticRow same = p[r];
            std::memcpy(same.products, b[r].products, sizeof same.products);
            same.ind_actividad_cliente = b[r].ind_actividad_cliente;
            same.tiprel_1mes = b[r].tiprel_1mes;
            EXPECT_TRUE(same_row(same, b[r])) << i << " " << r;
            if (r == 0 || !shows_segment(b[r], "02 - PARTICULARES") || b[r - 1].month < cfg.planted[0].from_month - 1)
                continue;
            if (b[r].month == cfg.planted[0].from_month) {
                // The state before from_month is the same: the add probabilities differ by the factor only.
                for (int q = 0; q < 24; ++q) {
                    if (q == kCno && bp[r][q] < 0.85f / 3) {
                        EXPECT_NEAR(pp[r][q], 3 * bp[r][q], 1e-6 + 1e-5 * bp[r][q]);
                    } else if (q != kCno) {
                        EXPECT_EQ(pp[r][q], bp[r][q]) << q;
                    }
                }
                ++checked_probabilities;
            }
            base_exposure += !b[r - 1].products[kCno];
            planted_exposure += !p[r - 1].products[kCno];
            if (!b[r - 1].products[kCno] && b[r].products[kCno]) ++base_adds;
            if (!p[r - 1].products[kCno] && p[r].products[kCno]) ++planted_adds;
            for (int q = 0; q < 24; ++q) {
                if (q == kCno) continue;
                if (!b[r - 1].products[q] && b[r].products[q]) ++base_other;
                if (!p[r - 1].products[q] && p[r].products[q]) ++planted_other;
            }
        }
        if (!ever_matches) {
            for (size_t r = 0; r < b.size(); ++r) EXPECT_TRUE(same_row(b[r], p[r])) << i << " " << r;
            ++identical_customers;
        }
    }
    EXPECT_GT(checked_probabilities, 5000u);
    EXPECT_GT(identical_customers, 5000u);
    ASSERT_GT(base_adds, 200);
    // Adds per month of a customer not holding cno the month before.
    const double ratio = (planted_adds / planted_exposure) / (base_adds / base_exposure);
    const double other_ratio = planted_other / base_other;
    std::printf("cno adds in matching rows: %.0f of %.0f -> %.0f of %.0f non-holder months (rate x%.2f); other adds x%.3f\n",
                base_adds, base_exposure, planted_adds, planted_exposure, ratio, other_ratio);
    // Below 3: the extra adds take the most eager customers out of the non-holders.
    EXPECT_GT(ratio, 2.3);
    EXPECT_LT(ratio, 3.5);
    EXPECT_GT(other_ratio, 0.9);  // a little more activity after the extra adds, nothing more
    EXPECT_LT(other_ratio, 1.2);
}

TEST(SyntheticSantanderPlanted, ChangesComposeInOrder) {
    // An uptake change for everyone, then a swap for students: the same rows as the uptake alone
    // with the students' flags swapped.
    SyntheticConfig drift = planted_config();
    drift.planted[0].uptake_product = kCno;
    drift.planted[0].uptake_factor = 4;
    SyntheticConfig both = drift;
    both.planted.emplace_back();
    both.planted[1].from_month = recsys::month_index(2015, 1);
    both.planted[1].segment = 2;
    both.planted[1].swap_a = kEcue;
    both.planted[1].swap_b = kViv;
    const auto a = generate(drift, 2000), b = generate(both, 2000);
    size_t swapped = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a[i].size(), b[i].size());
        for (size_t r = 0; r < a[i].size(); ++r) {
            SyntheticRow expected = a[i][r];
            if (shows_segment(a[i][r], "03 - UNIVERSITARIO")) {
                std::swap(expected.products[kEcue], expected.products[kViv]);
                ++swapped;
            }
            if (!blank_row(a[i][r])) {
                EXPECT_TRUE(same_row(b[i][r], expected)) << i << " " << r;
            }
        }
    }
    EXPECT_GT(swapped, 3000u);
}

TEST(SyntheticSantanderPlanted, RejectsBadChanges) {
    auto rejects = [](void (*edit)(recsys::PlantedChange &)) {
        SyntheticConfig cfg = planted_config();
        cfg.planted[0].uptake_product = kRecibo;
        cfg.planted[0].uptake_factor = 2;
        cfg.planted.push_back(cfg.planted[0]);
        edit(cfg.planted[1]);  // the second of two changes
        EXPECT_THROW(SyntheticSantander{cfg}, std::exception);
    };
    {
        SyntheticConfig ok = planted_config();
        ok.planted[0].uptake_product = kRecibo;
        ok.planted[0].uptake_factor = 2;
        EXPECT_NO_THROW(SyntheticSantander{ok});
    }
    rejects([](recsys::PlantedChange &p) { p.uptake_product = -1; });  // nothing planted
    rejects([](recsys::PlantedChange &p) { p.uptake_factor = 0; });
    rejects([](recsys::PlantedChange &p) { p.uptake_factor = std::nan(""); });
    rejects([](recsys::PlantedChange &p) { p.uptake_product = 24; });
    rejects([](recsys::PlantedChange &p) { p.segment = 3; });
    rejects([](recsys::PlantedChange &p) { p.from_month = -1; });
    rejects([](recsys::PlantedChange &p) { p.swap_a = 2; p.swap_b = 2; });
    rejects([](recsys::PlantedChange &p) { p.swap_a = 2; });
    rejects([](recsys::PlantedChange &p) { p.shift_column = recsys::PlantedColumn::Renta; p.shift_factor = -1; });
    EXPECT_EQ(recsys::synthetic_segment_index("03 - UNIVERSITARIO"), 2);
    EXPECT_EQ(recsys::synthetic_segment_index("01 - TOP"), 0);
    EXPECT_EQ(recsys::synthetic_segment_index("TOP"), -1);
    EXPECT_EQ(recsys::synthetic_segment_index(nullptr), -1);
    EXPECT_EQ(recsys::synthetic_product_index("ind_cco_fin_ult1"), 2);
    EXPECT_EQ(recsys::synthetic_product_index("ind_recibo_ult1"), 23);
    EXPECT_EQ(recsys::synthetic_product_index("ind_cco"), -1);
}

TEST(SyntheticSantander, RejectsBadConfig) {
    SyntheticConfig cfg;
    cfg.months = 0;
    EXPECT_THROW(SyntheticSantander{cfg}, std::exception);
    SyntheticSantander ok{SyntheticConfig{}};
    std::vector<SyntheticRow> rows;
    EXPECT_THROW(ok.customer(-1, rows), std::exception);
}

}  // namespace
