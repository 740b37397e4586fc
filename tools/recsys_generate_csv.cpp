// recsys_generate_csv: writes synthetic Santander data in the Kaggle train_ver2.csv format.
//
//   recsys_generate_csv --customers N --months M --seed S [--first-month 2015-01]
//                       [--first-customer I] [--no-blank-rows] [--report]
//
// Rows go to stdout, month by month (as in the Kaggle file: all customers of 2015-01-28, then
// 2015-02-28, ...); within a month, customers ascend by ncodpers. --first-customer lets several
// processes generate disjoint, stable id ranges. --report writes calibration figures (adds per
// month, prevalence, the planted sequence rules, and MAP@7 of the generator's own probabilities
// versus popularity on the last month) to stdout instead of the CSV.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/santander_schema.h"
#include "core/synthetic_santander.h"

namespace {

using recsys::SyntheticRow;

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr,
                 "recsys_generate_csv: %s\n"
                 "usage: recsys_generate_csv --customers N --months M --seed S [--first-month YYYY-MM]\n"
                 "                           [--first-customer I] [--no-blank-rows] [--report]\n",
                 why);
    std::exit(2);
}

int64_t parse_int(const char *s, const char *what) {
    char *end = nullptr;
    long long v = std::strtoll(s, &end, 10);
    if (!*s || *end || v < 0) usage((std::string("bad value for ") + what).c_str());
    return v;
}

// Rows are written month-major, like the Kaggle file. Customers are generated once each; the
// first month's rows go straight to stdout and every later month collects in its own temporary
// file, which is appended to stdout at the end.
struct Sink {
    std::FILE *file = nullptr;
    std::vector<char> data;
    size_t used = 0;
    Sink(std::FILE *f, size_t capacity) : file(f), data(capacity) {}
    void flush() {
        if (used && std::fwrite(data.data(), 1, used, file) != used) {
            std::perror("recsys_generate_csv: write");
            std::exit(1);
        }
        used = 0;
    }
    void row(const SyntheticRow &r) {
        if (data.size() - used < recsys::kKaggleCsvRowMax) flush();
        used += recsys::format_kaggle_csv_row(r, data.data() + used);
    }
};

int write_csv(const recsys::SyntheticSantander &gen, int64_t first_customer, int64_t customers) {
    const auto &cfg = gen.config();
    const size_t capacity = cfg.months > 64 ? (size_t(1) << 17) : (size_t(1) << 20);
    std::vector<Sink> sinks;
    sinks.reserve(size_t(cfg.months));
    sinks.emplace_back(stdout, size_t(1) << 22);
    for (int m = 1; m < cfg.months; ++m) {
        std::FILE *f = std::tmpfile();
        if (!f) {
            std::perror("recsys_generate_csv: tmpfile");
            return 1;
        }
        sinks.emplace_back(f, capacity);
    }
    std::fputs(recsys::kKaggleCsvHeader, stdout);
    std::fputc('\n', stdout);
    std::vector<SyntheticRow> rows;
    for (int64_t i = 0; i < customers; ++i) {
        gen.customer(first_customer + i, rows);
        for (const auto &r : rows) sinks[size_t(r.month - cfg.first_month)].row(r);
    }
    sinks[0].flush();
    std::vector<char> copy(size_t(1) << 22);
    for (size_t m = 1; m < sinks.size(); ++m) {
        sinks[m].flush();
        std::rewind(sinks[m].file);
        size_t n;
        while ((n = std::fread(copy.data(), 1, copy.size(), sinks[m].file)) > 0) {
            if (std::fwrite(copy.data(), 1, n, stdout) != n) {
                std::perror("recsys_generate_csv: write");
                return 1;
            }
        }
        std::fclose(sinks[m].file);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// --report

const char *short_name(size_t p) {
    static std::array<std::string, 24> names = [] {
        std::array<std::string, 24> n;
        for (size_t i = 0; i < 24; ++i) {
            std::string s = recsys::santander::kProductColumns[i];
            s = s.substr(4);  // drop "ind_"
            auto pos = s.find("_fin_ult1");
            if (pos == std::string::npos) pos = s.find("_ult1");
            n[i] = s.substr(0, pos);
        }
        return n;
    }();
    return names[p].c_str();
}

double average_precision_at_7(const std::vector<int> &ranked, const uint8_t *added, int n_added) {
    if (n_added == 0) return 0.0;
    double hits = 0, sum = 0;
    for (size_t k = 0; k < ranked.size() && k < 7; ++k) {
        if (added[ranked[k]]) {
            hits += 1;
            sum += hits / double(k + 1);
        }
    }
    return sum / std::min(n_added, 7);
}

int report(const recsys::SyntheticSantander &gen, int64_t first_customer, int64_t customers) {
    const auto &cfg = gen.config();
    const int M = cfg.months;
    std::vector<SyntheticRow> rows;
    std::vector<recsys::AddProbabilities> probs;
    std::vector<double> rows_per_month(M), pairs_per_month(M), adders_per_month(M);
    std::array<double, 24> held{}, adds{}, drops{}, nonheld{}, adds_last{}, held_first{}, held_last{};
    double total_rows = 0, pairs = 0;
    // rules
    double np_after_nom_n = 0, np_after_nom_add = 0;    // nom_pens add at m | nomina added at m-1
    double np_same_n = 0, np_same_add = 0;              // nom_pens add at m | nomina added at m
    double rec_after_nom_n = 0, rec_after_nom_add = 0;  // recibo add at m..m+3 | nomina added at m-1 (per month)
    double tj_cco_n = 0, tj_cco_add = 0, tj_nocco_n = 0, tj_nocco_add = 0;
    double again_n = 0, again_add = 0;                  // add at m | added at m-1 (any product)
    double minor_ctju = 0, ctju_holders = 0, ctju_over_19 = 0;
    std::array<double, 3> act_n{}, act_add{};
    // MAP on the last month
    std::vector<std::array<uint8_t, 24>> last_prev, last_now;
    std::vector<recsys::AddProbabilities> last_prob;
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < customers; ++i) {
        gen.customer(first_customer + i, rows, &probs);
        int32_t last_add_month = -1000000;
        int32_t nomina_add_month = -1000000;
        for (size_t r = 0; r < rows.size(); ++r) {
            const auto &row = rows[r];
            int m = row.month - cfg.first_month;
            rows_per_month[m] += 1;
            total_rows += 1;
            for (int p = 0; p < 24; ++p) {
                held[p] += row.products[p];
                if (m == 0) held_first[p] += row.products[p];
                if (m == M - 1) held_last[p] += row.products[p];
            }
            if (row.products[5]) {
                ctju_holders += 1;
                if (row.age >= 19) ctju_over_19 += 1;
            }
            if (row.age >= 0 && row.age < 18) minor_ctju += row.products[5];
            if (r == 0 || rows[r - 1].month != row.month - 1) continue;
            const auto &prev = rows[r - 1];
            pairs += 1;
            pairs_per_month[m] += 1;
            int n_add = 0;
            uint8_t added[24];
            for (int p = 0; p < 24; ++p) {
                added[p] = !prev.products[p] && row.products[p];
                if (!prev.products[p]) nonheld[p] += 1;
                if (prev.products[p] && !row.products[p]) drops[p] += 1;
                adds[p] += added[p];
                n_add += added[p];
            }
            if (n_add) adders_per_month[m] += 1;
            if (prev.ind_actividad_cliente >= 0) {
                act_n[size_t(prev.ind_actividad_cliente)] += 1;
                act_add[size_t(prev.ind_actividad_cliente)] += n_add > 0;
            }
            if (!prev.products[22]) {
                if (nomina_add_month == row.month - 1 && !prev.products[22]) {
                    np_after_nom_n += 1;
                    np_after_nom_add += added[22];
                }
                if (added[21]) {
                    np_same_n += 1;
                    np_same_add += added[22];
                }
            }
            if (!prev.products[23] && nomina_add_month >= row.month - 4 && nomina_add_month <= row.month - 1) {
                rec_after_nom_n += 1;
                rec_after_nom_add += added[23];
            }
            if (!prev.products[18]) {
                if (prev.products[2] || prev.products[12]) {
                    tj_cco_n += 1;
                    tj_cco_add += added[18];
                } else {
                    tj_nocco_n += 1;
                    tj_nocco_add += added[18];
                }
            }
            if (last_add_month == row.month - 1) {
                again_n += 1;
                again_add += n_add > 0;
            }
            if (n_add) last_add_month = row.month;
            if (added[21]) nomina_add_month = row.month;
            if (m == M - 1) {
                std::array<uint8_t, 24> a, b;
                std::memcpy(a.data(), prev.products, 24);
                std::memcpy(b.data(), row.products, 24);
                last_prev.push_back(a);
                last_now.push_back(b);
                last_prob.push_back(probs[r]);
                for (int p = 0; p < 24; ++p) adds_last[p] += added[p];
            }
        }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::printf("# synthetic Santander report: seed %llu, %lld customers, %d months from %04d-%02d\n",
                (unsigned long long)cfg.seed, (long long)customers, M, cfg.first_month / 12, cfg.first_month % 12 + 1);
    std::printf("rows %.0f (%.2f s with probabilities, %.0f rows/s)\n", total_rows, secs, total_rows / secs);
    std::printf("\nmonth     rows      share of continuing customers adding >=1 product\n");
    double adder_sum = 0, pair_sum = 0;
    for (int m = 0; m < M; ++m) {
        int32_t mi = cfg.first_month + m;
        std::printf("%04d-%02d %8.0f  %s\n", mi / 12, mi % 12 + 1, rows_per_month[m],
                    m ? (std::to_string(100.0 * adders_per_month[m] / pairs_per_month[m]).substr(0, 5) + "%").c_str()
                      : "-");
        adder_sum += adders_per_month[m];
        pair_sum += pairs_per_month[m];
    }
    std::printf("all months: %.2f%% of customer-months with >=1 add\n", 100.0 * adder_sum / pair_sum);
    std::printf("\nproduct    prevalence (first, last month)  adds/cust-month  add-rate(non-holders)  drops/holder-month  "
                "share-of-adds\n");
    double all_adds = 0;
    for (int p = 0; p < 24; ++p) all_adds += adds[p];
    for (int p = 0; p < 24; ++p)
        std::printf("%-9s  %9.4f%% (%8.4f%%, %8.4f%%)  %14.4f%%  %20.4f%%  %17.3f%%  %11.2f%%\n", short_name(size_t(p)),
                    100 * held[p] / total_rows, 100 * held_first[p] / rows_per_month[0],
                    100 * held_last[p] / rows_per_month[size_t(M - 1)], 100 * adds[p] / pairs, 100 * adds[p] / std::max(1.0, nonheld[p]),
                    100 * drops[p] / std::max(1.0, held[p] * pairs / total_rows), 100 * adds[p] / all_adds);
    double np_rate = adds[22] / nonheld[22];
    std::printf("\nrules (monthly add rates)\n");
    std::printf("nom_pens | nomina added last month: %.2f%% (n=%.0f) vs overall %.3f%% -> lift %.1f\n",
                100 * np_after_nom_add / np_after_nom_n, np_after_nom_n, 100 * np_rate,
                np_after_nom_add / np_after_nom_n / np_rate);
    std::printf("nom_pens | nomina added same month: %.2f%% (n=%.0f) -> lift %.1f\n", 100 * np_same_add / np_same_n,
                np_same_n, np_same_add / np_same_n / np_rate);
    std::printf("recibo | nomina added 1..4 months ago: %.2f%% vs overall %.3f%% -> lift %.1f\n",
                100 * rec_after_nom_add / rec_after_nom_n, 100 * adds[23] / nonheld[23],
                rec_after_nom_add / rec_after_nom_n / (adds[23] / nonheld[23]));
    std::printf("tjcr | holds cco or ecue: %.3f%%; without: %.3f%%\n", 100 * tj_cco_add / tj_cco_n,
                100 * tj_nocco_add / std::max(1.0, tj_nocco_n));
    std::printf("any add | added last month: %.2f%% vs %.2f%% overall\n", 100 * again_add / again_n,
                100 * adder_sum / pair_sum);
    std::printf("any add | active: %.2f%%; inactive: %.2f%%\n", 100 * act_add[1] / act_n[1], 100 * act_add[0] / act_n[0]);
    std::printf("ctju rows held by age >= 19: %.0f of %.0f\n", ctju_over_19, ctju_holders);

    // MAP@7 on the last month: the generator's own probabilities vs popularity.
    std::array<double, 24> pop = adds;
    for (int p = 0; p < 24; ++p) pop[p] -= adds_last[p];  // popularity from the months before the last
    std::vector<int> order_pop(24);
    for (int p = 0; p < 24; ++p) order_pop[size_t(p)] = p;
    std::stable_sort(order_pop.begin(), order_pop.end(), [&](int a, int b) { return pop[size_t(a)] > pop[size_t(b)]; });
    double map_oracle = 0, map_pop = 0, map_cco = 0, n_cust = 0, n_adders = 0;
    for (size_t c = 0; c < last_prev.size(); ++c) {
        uint8_t added[24];
        int n_added = 0;
        for (int p = 0; p < 24; ++p) {
            added[p] = !last_prev[c][size_t(p)] && last_now[c][size_t(p)];
            n_added += added[p];
        }
        n_cust += 1;
        if (!n_added) continue;
        n_adders += 1;
        std::vector<int> ranked_pop, ranked_oracle;
        for (int p : order_pop)
            if (!last_prev[c][size_t(p)]) ranked_pop.push_back(p);
        std::vector<int> cand;
        for (int p = 0; p < 24; ++p)
            if (!last_prev[c][size_t(p)]) cand.push_back(p);
        std::stable_sort(cand.begin(), cand.end(),
                         [&](int a, int b) { return last_prob[c][size_t(a)] > last_prob[c][size_t(b)]; });
        map_oracle += average_precision_at_7(cand, added, n_added);
        map_pop += average_precision_at_7(ranked_pop, added, n_added);
        map_cco += added[2] ? 1.0 / std::min(n_added, 7) : 0.0;
    }
    std::printf("\nMAP@7 on the last month (%.0f continuing customers, %.0f with adds = %.2f%%)\n", n_cust, n_adders,
                100 * n_adders / n_cust);
    std::printf("                          all customers   customers with adds\n");
    std::printf("perfect                   %.5f         1.00000\n", n_adders / n_cust);
    std::printf("generator's probabilities %.5f         %.5f\n", map_oracle / n_cust, map_oracle / n_adders);
    std::printf("popularity (non-held)     %.5f         %.5f\n", map_pop / n_cust, map_pop / n_adders);
    std::printf("cco for everyone          %.5f         %.5f\n", map_cco / n_cust, map_cco / n_adders);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    recsys::SyntheticConfig cfg;
    int64_t customers = -1, first_customer = 0;
    bool do_report = false;
    bool have_months = false, have_seed = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--customers") customers = parse_int(value(), "--customers");
        else if (a == "--months") {
            int64_t m = parse_int(value(), "--months");
            if (m < 1 || m > 1200) usage("--months must be in 1..1200");
            cfg.months = int32_t(m);
            have_months = true;
        } else if (a == "--seed") {
            const char *s = value();
            char *end = nullptr;
            cfg.seed = std::strtoull(s, &end, 10);
            if (!*s || *end) usage("bad value for --seed");
            have_seed = true;
        } else if (a == "--first-month") {
            const char *s = value();
            int y = 0, m = 0;
            char tail = 0;
            if (std::sscanf(s, "%d-%d%c", &y, &m, &tail) != 2 || y < 1900 || y > 9999 || m < 1 || m > 12)
                usage("--first-month must look like 2015-01");
            cfg.first_month = y * 12 + (m - 1);
        } else if (a == "--first-customer") first_customer = parse_int(value(), "--first-customer");
        else if (a == "--no-blank-rows") cfg.blank_demographics_rate = 0.0;
        else if (a == "--report") do_report = true;
        else if (a == "--help" || a == "-h") usage("help");
        else usage(("unknown argument " + a).c_str());
    }
    if (customers < 0) usage("--customers is required");
    if (!have_months || !have_seed) usage("--months and --seed are required");
    try {
        recsys::SyntheticSantander gen(cfg);
        return do_report ? report(gen, first_customer, customers) : write_csv(gen, first_customer, customers);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "recsys_generate_csv: %s\n", e.what());
        return 1;
    }
}
