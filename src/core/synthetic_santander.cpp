#include "synthetic_santander.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "errors.h"
#include "santander_schema.h"

namespace recsys {

namespace {

// ---------------------------------------------------------------------------------------------
// Counter-based randomness: splitmix64 finaliser over keys built from (seed, index, month, purpose).

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

inline uint64_t mix64(uint64_t z) {
    z += kGolden;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct Rng {
    uint64_t state;
    explicit Rng(uint64_t key) : state(mix64(key)) {}
    uint64_t next() {
        state += kGolden;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    bool chance(double p) { return uniform() < p; }
    int32_t below(int32_t n) { return int32_t((next() >> 33) % uint64_t(n)); }
    // Approximately standard normal (Irwin-Hall of 4 uniforms, scaled): plain arithmetic, so the
    // result is bit-identical everywhere.
    double normal() {
        double s = uniform() + uniform() + uniform() + uniform();
        return (s - 2.0) * 1.7320508075688772;
    }
};

enum Purpose : uint64_t { kStatic = 1, kMonth = 2, kInitial = 3, kRow = 4 };

inline uint64_t stream_key(uint64_t customer_key, uint64_t purpose, int64_t month) {
    return mix64(customer_key ^ mix64(purpose * 0x100000001b3ULL + uint64_t(month + 1000000)));
}

template <size_t N>
int32_t pick(Rng &rng, const double (&weights)[N]) {
    double total = 0;
    for (double w : weights) total += w;
    double u = rng.uniform() * total;
    for (size_t i = 0; i < N; ++i) {
        if (u < weights[i]) return int32_t(i);
        u -= weights[i];
    }
    return int32_t(N - 1);
}

// ---------------------------------------------------------------------------------------------
// Products, in santander_schema.h order.

enum Product {
    AHOR, AVAL, CCO, CDER, CNO, CTJU, CTMA, CTOP, CTPP, DECO, DEME, DELA, ECUE,
    FOND, HIP, PLAN, PRES, RECA, TJCR, VALO, VIV, NOMINA, NOM_PENS, RECIBO, kProducts
};

struct ProductParams {
    double first_add;  // monthly hazard of a first add for a non-holder with all multipliers 1
    double readd;      // extra monthly hazard in the months right after the product was dropped
    double drop;       // monthly hazard of dropping a held product
    double prior;      // holding probability at the start of the burn-in (before multipliers)
};

// Calibrated by measurement (recsys_generate_csv --report) to FACTS.md-like rates.
constexpr ProductParams kParams[kProducts] = {
    /* ahor     */ {2e-6, 0.002, 0.002, 0.0001},
    /* aval     */ {1e-6, 0.002, 0.002, 0.00003},
    /* cco      */ {0.006, 0.030, 0.006, 0.54},
    /* cder     */ {1e-5, 0.005, 0.005, 0.0004},
    /* cno      */ {0.0013, 0.040, 0.018, 0.11},
    /* ctju     */ {0.010, 0.020, 0.004, 0.42},
    /* ctma     */ {0.0005, 0.030, 0.050, 0.008},
    /* ctop     */ {0.0001, 0.005, 0.0008, 0.26},
    /* ctpp     */ {0.0001, 0.005, 0.0023, 0.085},
    /* deco     */ {1.5e-5, 0.005, 0.006, 0.0026},
    /* deme     */ {1.5e-5, 0.005, 0.006, 0.0026},
    /* dela     */ {0.0003, 0.010, 0.007, 0.068},
    /* ecue     */ {0.0009, 0.030, 0.020, 0.048},
    /* fond     */ {0.00016, 0.020, 0.011, 0.022},
    /* hip      */ {1.5e-5, 0.002, 0.0017, 0.010},
    /* plan     */ {6e-5, 0.010, 0.0065, 0.013},
    /* pres     */ {3e-5, 0.005, 0.008, 0.0038},
    /* reca     */ {0.0006, 0.030, 0.010, 0.085},
    /* tjcr     */ {0.0008, 0.150, 0.100, 0.045},
    /* valo     */ {0.00026, 0.020, 0.012, 0.031},
    /* viv      */ {8e-6, 0.002, 0.0013, 0.0062},
    /* nomina   */ {0.0009, 0.220, 0.100, 0.072},
    /* nom_pens */ {0.0003, 0.220, 0.100, 0.010},
    /* recibo   */ {0.0016, 0.220, 0.070, 0.155},
};

// How long the re-add boost lasts after a drop (months since the product was last held).
inline double readd_decay(int32_t since) {
    if (since <= 3) return 1.0;
    if (since <= 6) return 0.5;
    if (since <= 12) return 0.2;
    return 0.0;
}

// ---------------------------------------------------------------------------------------------
// Categorical domains.

const char *const kSegments[3] = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
enum Segment { TOP = 0, PARTICULARES = 1, UNIVERSITARIO = 2, SEG_MISSING = 3 };

const char *const kProvinces[53] = {
    nullptr,      "ALAVA",     "ALBACETE",   "ALICANTE",   "ALMERIA",     "AVILA",       "BADAJOZ",
    "BALEARS, ILLES", "BARCELONA", "BURGOS", "CACERES",    "CADIZ",       "CASTELLON",   "CIUDAD REAL",
    "CORDOBA",    "CORUÑA, A", "CUENCA",     "GIRONA",     "GRANADA",     "GUADALAJARA", "GIPUZKOA",
    "HUELVA",     "HUESCA",    "JAEN",       "LEON",       "LERIDA",      "RIOJA, LA",   "LUGO",
    "MADRID",     "MALAGA",    "MURCIA",     "NAVARRA",    "OURENSE",     "ASTURIAS",    "PALENCIA",
    "PALMAS, LAS", "PONTEVEDRA", "SALAMANCA", "SANTA CRUZ DE TENERIFE", "CANTABRIA", "SEGOVIA", "SEVILLA",
    "SORIA",      "TARRAGONA", "TERUEL",     "TOLEDO",     "VALENCIA",    "VALLADOLID",  "BIZKAIA",
    "ZAMORA",     "ZARAGOZA",  "CEUTA",      "MELILLA",
};

// Approximate shares of customers per province in the real file (percent), index = cod_prov.
constexpr double kProvinceWeights[53] = {
    0,   0.3, 0.8, 2.3, 0.6, 0.3, 1.4, 1.3, 9.4, 0.7, 1.0, 2.2, 0.9, 0.8, 0.9, 3.1, 0.3, 0.6,
    1.1, 0.5, 0.4, 0.7, 0.3, 0.7, 0.7, 0.4, 0.5, 0.5, 32.5, 2.8, 2.9, 0.6, 0.5, 1.8, 0.3, 1.6,
    2.0, 1.0, 0.8, 0.9, 0.4, 4.3, 0.2, 0.6, 0.2, 1.3, 5.0, 1.7, 1.2, 0.3, 2.5, 0.1, 0.1,
};

// Income level by province (multiplies the lognormal median).
inline double province_income(int32_t prov) {
    switch (prov) {
        case 28: return 1.40;  // Madrid
        case 8: return 1.15;   // Barcelona
        case 1: case 20: case 31: case 48: return 1.20;  // Basque country, Navarra
        case 7: case 17: case 43: return 1.05;
        case 4: case 6: case 10: case 11: case 14: case 18: case 21: case 23: case 29: case 41:
        case 51: case 52: return 0.80;  // Andalucia, Extremadura, Ceuta, Melilla
        default: return 0.95;
    }
}

const char *const kChannelsStudent[] = {"KHE", "KFC", "KAT", "KHD", "KHK", "KHQ", "KHM", "KHN", "KFA", "RED"};
constexpr double kChannelsStudentW[] = {70, 8, 5, 6, 3, 4, 1.5, 1, 1, 0.5};
const char *const kChannelsOther[] = {"KAT", "KFC", "KHE", "KHQ", "KFA", "KHK", "KHM", "KHN", "KAS", "RED",
                                      "KAG", "KAY", "KAA", "KAB", "KAE", "KCC", "KBZ", "KHL", "KFD", "KAW",
                                      "KAR", "KAZ", "KAF", "007", "013"};
constexpr double kChannelsOtherW[] = {35, 33, 7, 5, 4.5, 1.5, 1.5, 1, 0.9, 0.8, 0.8, 0.7, 0.7, 0.6,
                                      0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.15, 0.15};

const char *const kForeignCountries[] = {"FR", "AR", "DE", "GB", "US", "CO", "IT", "RO", "MX", "CH", "BR", "VE"};
const char kRareEmployee[] = {'A', 'B', 'F', 'P'};

constexpr int32_t kBurnIn = 12;           // months simulated before first_month for existing customers
constexpr int32_t kNever = -1000000;      // "no such month"
constexpr double kLeaveHazard = 0.002;    // per month, inside the window

// ---------------------------------------------------------------------------------------------
// A customer's fixed attributes and evolving state.

struct Customer {
    uint64_t key = 0;
    int64_t index = 0;
    // fixed
    int32_t join_month = 0, join_day = 1;
    int32_t birth_month = 0;    // month index of birth
    int32_t grad_age = 99;      // UNIVERSITARIO customers become PARTICULARES at this age
    int32_t segment0 = PARTICULARES;
    bool segment_missing = false;
    char sexo = 'V', empleado = 'N', indresi = 'S', indext = 'N';
    const char *pais = "ES";
    const char *canal = nullptr;
    int32_t prov = 28;
    double renta = 0;           // NaN when missing
    double income_ratio = 1;    // renta / 100k, 1 when missing
    double propensity = 1;
    bool tiprel_flip = false;   // tiprel_1mes disagrees with the activity flag
    int32_t leave_month = 0;    // first month without a row; > last month when staying
    // state
    bool active = false;
    uint8_t held[kProducts] = {};
    int32_t last_held[kProducts];  // last month the product was held (kNever)
    int32_t last_add[kProducts];   // last month the product was added (kNever)
    int32_t last_any_add = kNever;

    int32_t age_at(int32_t month) const { return (month - birth_month) / 12; }
    int32_t segment_at(int32_t month) const {
        if (segment0 == UNIVERSITARIO && age_at(month) >= grad_age) return PARTICULARES;
        return segment0;
    }
};

// Product multipliers that depend on who the customer is (age, income, segment) at a month.
void static_multipliers(const Customer &c, int32_t month, double m[kProducts]) {
    for (int p = 0; p < kProducts; ++p) m[p] = 1.0;
    int32_t age = c.age_at(month);
    int32_t seg = c.segment_missing ? SEG_MISSING : c.segment_at(month);
    double r = c.income_ratio;

    // age
    if (age < 18) {
        for (int p = 0; p < kProducts; ++p) m[p] = 0.0;
        m[CTJU] = 1.0;
        m[CCO] = 0.15;
        m[RECA] = 0.0;
        m[DELA] = 0.1;
        m[FOND] = 0.1;
        m[VALO] = 0.1;
    } else {
        m[CTJU] = 0.0;
        if (age <= 25) m[CCO] = 1.3;
        m[ECUE] = age <= 35 ? 2.0 : age <= 50 ? 1.0 : 0.4;
        m[PLAN] = age < 40 ? 0.1 : age <= 65 ? 2.5 : 1.0;
        double work = age <= 22 ? 0.25 : age <= 64 ? 1.5 : 0.3;
        m[NOMINA] = work;
        m[NOM_PENS] = age >= 65 ? 3.0 : work;  // pensions for the elderly, payroll otherwise
        m[HIP] = (age >= 28 && age <= 55) ? 2.0 : 0.3;
        m[PRES] = (age >= 25 && age <= 60) ? 1.5 : 0.4;
        m[TJCR] = age <= 22 ? 0.5 : 1.2;
        double wealth_age = age > 40 ? 1.5 : age < 25 ? 0.3 : 1.0;
        m[DELA] *= wealth_age;
        m[VALO] *= wealth_age;
        m[FOND] *= wealth_age;
        m[CTOP] *= age < 25 ? 0.3 : 1.0;
        m[CTPP] *= age < 25 ? 0.3 : 1.0;
        m[CTMA] *= age < 25 ? 0.4 : 1.0;
        m[RECA] = age >= 30 ? 1.5 : age < 25 ? 0.2 : 1.0;
    }
    // income
    double rich = std::min(5.0, std::max(0.2, std::pow(r, 1.2)));
    m[FOND] *= rich;
    m[VALO] *= rich;
    m[PLAN] *= rich;
    m[DELA] *= std::sqrt(rich);
    m[HIP] *= std::min(2.0, std::max(0.5, std::sqrt(r)));
    // segment
    switch (seg) {
        case TOP:
            m[FOND] *= 4;
            m[VALO] *= 4;
            m[CTMA] *= 3;
            m[DELA] *= 3;
            m[PLAN] *= 2;
            m[TJCR] *= 1.5;
            break;
        case UNIVERSITARIO:
            m[CCO] *= 1.5;
            m[ECUE] *= 2.5;
            m[FOND] *= 0.3;
            m[VALO] *= 0.3;
            m[PLAN] *= 0.3;
            m[DELA] *= 0.3;
            m[HIP] *= 0.3;
            m[RECA] *= 0.3;
            m[NOMINA] *= 0.5;
            m[NOM_PENS] *= 0.5;
            break;
        case SEG_MISSING:
            for (int p = 0; p < kProducts; ++p) m[p] *= 0.8;
            break;
        default:
            break;
    }
}

void init_state(Customer &c) {
    for (int p = 0; p < kProducts; ++p) {
        c.held[p] = 0;
        c.last_held[p] = kNever;
        c.last_add[p] = kNever;
    }
    c.last_any_add = kNever;
}

// Holdings at the start of a simulation: the welcome bundle of a joiner, or a draw from the
// priors for a customer who joined long before.
void initial_holdings(Customer &c, int32_t month, bool joiner) {
    init_state(c);
    Rng rng(stream_key(c.key, kInitial, month));
    int32_t age = c.age_at(month);
    auto hold = [&](int p) {
        c.held[p] = 1;
        c.last_held[p] = month;
    };
    if (joiner) {
        c.active = rng.chance(0.55);
        if (age < 18) {
            if (rng.chance(0.85)) hold(CTJU);
            else hold(CCO);
        } else {
            if (rng.chance(0.80)) hold(CCO);
            if (rng.chance(c.segment0 == UNIVERSITARIO ? 0.10 : 0.04)) hold(ECUE);
            if (rng.chance(0.03)) {
                hold(NOMINA);
                hold(NOM_PENS);
            }
            if (rng.chance(0.03)) hold(RECIBO);
            if (c.held[CCO] && rng.chance(0.02)) hold(TJCR);
        }
        if (!c.held[CCO] && !c.held[CTJU] && !c.held[ECUE]) hold(age < 18 ? CTJU : CCO);
        c.last_any_add = month;
        for (int p = 0; p < kProducts; ++p)
            if (c.held[p]) c.last_add[p] = month;
        return;
    }
    double seg_active = c.segment0 == TOP ? 0.75 : c.segment0 == UNIVERSITARIO ? 0.30 : 0.50;
    c.active = rng.chance(std::min(0.95, seg_active * std::sqrt(c.propensity)));
    double m[kProducts];
    static_multipliers(c, month, m);
    double person = (c.active ? 1.3 : 0.75) * std::pow(c.propensity, 0.3);
    for (int p = 0; p < kProducts; ++p) {
        double prob = kParams[p].prior * std::pow(m[p], 0.7) * person;
        if (p == CCO) prob = kParams[p].prior * (age < 18 ? 0.15 : 1.0) * (c.active ? 1.15 : 0.9);
        if (rng.chance(std::min(0.95, prob))) hold(p);
    }
    // coherence: payroll comes with nom_pens, credit card needs an account, juniors hold ctju
    if (c.held[NOMINA] && rng.chance(0.9)) hold(NOM_PENS);
    if (c.held[TJCR] && !c.held[CCO] && !c.held[ECUE]) hold(CCO);
    // recently dropped churny products remembered as such
    for (int p : {NOMINA, NOM_PENS, RECIBO, TJCR, CNO, ECUE, RECA}) {
        if (!c.held[p] && rng.chance(kParams[p].prior * 0.6)) c.last_held[p] = month - 1 - rng.below(12);
    }
}

// Whether a planted change applies to customer c in `month` (PlantedChange).
bool planted_applies(const PlantedChange &planted, const Customer &c, int32_t month) {
    if (month < planted.from_month) return false;
    if (planted.segment < 0) return true;
    return !c.segment_missing && c.segment_at(month) == planted.segment;
}

// One month of dynamics: updates holdings from month-1 to `month`. Writes the add
// probabilities (under the state before the draws) when prob is not null.
void step(Customer &c, int32_t month, float *prob, const std::vector<PlantedChange> &planted) {
    Rng rng(stream_key(c.key, kMonth, month));
    // activity transitions
    if (c.active) {
        if (rng.chance(0.015)) c.active = false;
    } else if (rng.chance(0.010)) {
        c.active = true;
    }
    double m[kProducts];
    static_multipliers(c, month, m);
    int32_t age = c.age_at(month);
    int32_t since_any = month - c.last_any_add;
    double recency = since_any == 1 ? 3.0 : since_any == 2 ? 2.0 : since_any == 3 ? 1.5 : 1.0;
    double fresh = month - c.join_month < 6 ? 2.0 : 1.0;
    double act = c.active ? 2.0 : 0.3;
    double person = c.propensity * act * fresh * recency;
    double person_readd = std::sqrt(c.propensity * act);

    uint8_t prev[kProducts];
    std::memcpy(prev, c.held, sizeof prev);
    double h[kProducts];
    for (int p = 0; p < kProducts; ++p) {
        h[p] = 0.0;
        if (prev[p] || m[p] == 0.0) continue;
        double hz = kParams[p].first_add * m[p] * person;
        int32_t since = month - c.last_held[p];
        if (since <= 12) hz += kParams[p].readd * readd_decay(since) * person_readd * std::min(1.0, m[p]);
        h[p] = hz;
    }
    // sequence rules
    if (!prev[NOM_PENS] && prev[NOMINA]) h[NOM_PENS] += month - c.last_add[NOMINA] == 1 ? 0.5 : 0.25;
    if (!prev[RECIBO]) {
        int32_t since_nomina = month - c.last_add[NOMINA];
        if (since_nomina >= 1 && since_nomina <= 4) h[RECIBO] += 0.12;
        if (prev[NOMINA]) h[RECIBO] *= 2.0;
    }
    if (!prev[TJCR]) {
        if (!prev[CCO] && !prev[ECUE]) h[TJCR] *= 0.05;
        int32_t since_cco = month - c.last_add[CCO];
        if (since_cco >= 1 && since_cco <= 3) h[TJCR] *= 5.0;
    }
    // A planted uptake change scales a hazard that is > 0 by a factor > 0: the same draws are
    // made in the same order, so only this customer's outcomes can change.
    for (const PlantedChange &change : planted)
        if (change.uptake_product >= 0 && planted_applies(change, c, month))
            h[change.uptake_product] *= change.uptake_factor;
    for (int p = 0; p < kProducts; ++p) h[p] = std::min(h[p], 0.85);

    // ctju ages out: converted into a current account
    double ctju_out = 0.0;
    if (prev[CTJU]) ctju_out = age >= 19 ? 1.0 : age == 18 ? 0.3 : 0.0;

    if (prob) {
        for (int p = 0; p < kProducts; ++p) prob[p] = float(h[p]);
        if (!prev[NOM_PENS]) prob[NOM_PENS] = float(h[NOM_PENS] + (1 - h[NOM_PENS]) * h[NOMINA] * 0.55);
        if (!prev[CCO]) prob[CCO] = float(h[CCO] + (1 - h[CCO]) * ctju_out * 0.8);
    }

    bool added = false;
    for (int p = 0; p < kProducts; ++p) {
        if (h[p] > 0.0 && rng.uniform() < h[p]) {
            c.held[p] = 1;
            c.last_add[p] = month;
            added = true;
        }
    }
    if (c.held[NOMINA] && !prev[NOMINA] && !c.held[NOM_PENS] && rng.chance(0.55)) {
        c.held[NOM_PENS] = 1;
        c.last_add[NOM_PENS] = month;
    }
    // drops
    double drop_scale = c.active ? 0.8 : 1.6;
    bool nomina_dropped = false;
    for (int p = 0; p < kProducts; ++p) {
        if (!prev[p]) continue;
        double d = kParams[p].drop * drop_scale;
        if (p == CTJU) d = std::max(d, ctju_out);
        if (p == NOM_PENS && nomina_dropped) d = 0.7;
        if (rng.uniform() < d) {
            c.held[p] = 0;
            if (p == NOMINA) nomina_dropped = true;
            if (p == CTJU && ctju_out > 0.0 && !prev[CCO] && !c.held[CCO] && rng.chance(0.8)) {
                c.held[CCO] = 1;
                c.last_add[CCO] = month;
                added = true;
            }
        }
    }
    if (added) {
        c.last_any_add = month;
        if (!c.active && rng.chance(0.5)) c.active = true;
    }
    for (int p = 0; p < kProducts; ++p)
        if (c.held[p]) c.last_held[p] = month;
}

// Fixed attributes of customer `index`.
void draw_customer(const SyntheticConfig &cfg, int64_t index, Customer &c) {
    c.index = index;
    c.key = mix64(cfg.seed * 0xd1342543de82ef95ULL + mix64(uint64_t(index) ^ 0x5851f42d4c957f2dULL));
    Rng rng(stream_key(c.key, kStatic, 0));

    // When does the customer join? Existing at first_month, or inside the window: ~1.1% of the
    // customers per month, plus a large intake every July (as in July 2015).
    const int32_t window_end = cfg.first_month + cfg.months;
    double join_weight_total = 0;
    for (int32_t mo = cfg.first_month + 1; mo < window_end; ++mo) join_weight_total += (mo % 12 == 6) ? 0.20 : 0.011;
    double joiner_share = std::min(0.8, join_weight_total);
    bool joiner = rng.uniform() < joiner_share;
    bool july_intake = false;
    int32_t join_month = 0;
    if (joiner) {
        double u = rng.uniform() * join_weight_total;
        join_month = window_end - 1;
        for (int32_t mo = cfg.first_month + 1; mo < window_end; ++mo) {
            double w = (mo % 12 == 6) ? 0.20 : 0.011;
            if (u < w) {
                join_month = mo;
                july_intake = mo % 12 == 6;
                break;
            }
            u -= w;
        }
    }

    // Who is the customer? Minors, students, adults.
    double kind = rng.uniform();
    if (july_intake && rng.chance(0.8)) kind = 0.02 + 0.35 * rng.uniform();  // the July intake: students
    int32_t age;
    if (kind < 0.02) {
        age = 2 + rng.below(16);
        c.segment0 = PARTICULARES;
    } else if (kind < 0.37) {
        age = 19 + rng.below(4) + rng.below(4) + rng.below(3);  // 19..27, peak 22-23
        c.segment0 = rng.chance(0.92) ? UNIVERSITARIO : PARTICULARES;
    } else {
        age = int32_t(std::lround(45.0 + 13.0 * rng.normal()));
        if (age < 24) age = 24 + rng.below(6);
        if (age > 98) age = 98 - rng.below(10);
        if (rng.chance(0.0005)) age = 100 + rng.below(17);
        c.segment0 = rng.chance(0.03) ? UNIVERSITARIO : PARTICULARES;
    }
    c.grad_age = 25 + rng.below(4);

    // Fixed month of reference for the age: join month for joiners, first_month otherwise.
    int32_t ref_month = joiner ? join_month : cfg.first_month;
    c.birth_month = ref_month - 12 * age - rng.below(12);

    // Joining date of existing customers: students recently, others anywhere in 20 years.
    if (!joiner) {
        int32_t tenure;
        if (age < 18) tenure = 1 + rng.below(std::max(1, age * 12));
        else if (c.segment0 == UNIVERSITARIO) tenure = 1 + rng.below(48);
        else tenure = rng.chance(0.4) ? 1 + rng.below(60) : 1 + rng.below(250);
        if (age >= 18) tenure = std::min(tenure, (age - 16) * 12);  // adults joined at 16 or later
        join_month = cfg.first_month - tenure;
    }
    c.join_month = join_month;
    c.join_day = 1 + rng.below(28);

    // Demographics.
    double sx = rng.uniform();
    c.sexo = sx < 0.005 ? 0 : sx < 0.545 ? 'V' : 'H';
    if (c.segment0 == UNIVERSITARIO && c.sexo) c.sexo = rng.chance(0.52) ? 'H' : 'V';
    c.empleado = rng.chance(0.0006) ? kRareEmployee[rng.below(4)] : 'N';
    bool foreign = rng.chance(0.005);
    c.pais = foreign ? kForeignCountries[rng.below(12)] : "ES";
    c.indresi = foreign ? 'N' : 'S';
    c.indext = foreign ? 'S' : (rng.chance(0.04) ? 'S' : 'N');
    c.prov = foreign && rng.chance(0.9) ? -1 : pick(rng, kProvinceWeights);
    if (c.prov == 0) c.prov = 28;  // (weight 0; only reachable through rounding)
    if (!foreign && rng.chance(0.003)) c.prov = -1;
    c.segment_missing = rng.chance(0.012);
    bool student_like = c.segment0 == UNIVERSITARIO;
    if (c.segment_missing && rng.chance(0.9)) c.canal = nullptr;
    else if (student_like) c.canal = kChannelsStudent[pick(rng, kChannelsStudentW)];
    else c.canal = kChannelsOther[pick(rng, kChannelsOtherW)];

    // TOP: ~6% of adults, the richer ones.
    double income_z = rng.normal();
    if (c.segment0 == PARTICULARES && age >= 25 && rng.chance(0.06 * (income_z > 0 ? 1.7 : 0.3))) c.segment0 = TOP;
    double median = 90000.0 * province_income(c.prov) * (c.segment0 == TOP ? 2.0 : 1.0);
    double income = median * std::exp(0.55 * income_z);
    double cents = std::floor(std::min(income, 2.8e7) * 100.0 + 0.5);
    bool renta_missing = rng.chance(0.20);
    c.renta = renta_missing ? std::numeric_limits<double>::quiet_NaN() : cents * 0.01;
    c.income_ratio = renta_missing ? 1.0 : c.renta / 100000.0;

    // Latent propensity to add products: lognormal, mean about 1.
    c.propensity = std::exp(0.8 * rng.normal() - 0.32);
    c.tiprel_flip = rng.chance(0.1);

    // Rarely customers leave (hazard per month inside the window).
    c.leave_month = window_end + 1;
    for (int32_t mo = std::max(join_month, cfg.first_month) + 1; mo < window_end; ++mo) {
        if (rng.chance(kLeaveHazard)) {
            c.leave_month = mo;
            break;
        }
    }
}

// The output-only parts (swap, shift) of one planted change, on one row.
void plant_output(const PlantedChange &planted, const Customer &c, SyntheticRow &row) {
    if (!planted_applies(planted, c, row.month)) return;
    if (planted.swap_a >= 0) std::swap(row.products[planted.swap_a], row.products[planted.swap_b]);
    switch (planted.shift_column) {
        case PlantedColumn::Renta:
            if (!std::isnan(row.renta))
                row.renta = std::floor(std::floor(row.renta * 100.0 + 0.5) * planted.shift_factor + 0.5) * 0.01;
            break;
        case PlantedColumn::Age:
            if (row.age >= 0) row.age = int32_t(std::lround(row.age * planted.shift_factor));
            break;
        case PlantedColumn::Antiguedad:
            if (row.antiguedad >= 0) row.antiguedad = int32_t(std::lround(row.antiguedad * planted.shift_factor));
            break;
        case PlantedColumn::None:
            break;
    }
}

void fill_row(const SyntheticConfig &cfg, const Customer &c, int32_t month, SyntheticRow &row) {
    Rng rng(stream_key(c.key, kRow, month));
    row.month = month;
    row.ncodpers = SyntheticSantander::kFirstNcodpers + c.index;
    std::memcpy(row.products, c.held, sizeof row.products);
    if (cfg.blank_demographics_rate > 0 && rng.uniform() < cfg.blank_demographics_rate) {
        row.ind_empleado = 0;
        row.pais_residencia = nullptr;
        row.sexo = 0;
        row.age = -1;
        row.fecha_alta_month = -1;
        row.fecha_alta_day = 0;
        row.ind_nuevo = -1;
        row.antiguedad = -1;
        row.indrel = -1;
        row.tiprel_1mes = 0;
        row.indresi = 0;
        row.indext = 0;
        row.canal_entrada = nullptr;
        row.cod_prov = -1;
        row.ind_actividad_cliente = -1;
        row.renta = std::numeric_limits<double>::quiet_NaN();
        row.segmento = nullptr;
        return;
    }
    row.ind_empleado = c.empleado;
    row.pais_residencia = c.pais;
    row.sexo = c.sexo;
    row.age = c.age_at(month);
    row.fecha_alta_month = c.join_month;
    row.fecha_alta_day = c.join_day;
    row.ind_nuevo = month - c.join_month < 6 ? 1 : 0;
    row.antiguedad = month - c.join_month;
    row.indrel = rng.chance(0.0018) ? 99 : 1;
    row.ind_actividad_cliente = c.active ? 1 : 0;
    row.tiprel_1mes = (c.active != c.tiprel_flip) ? 'A' : 'I';
    row.indresi = c.indresi;
    row.indext = c.indext;
    row.canal_entrada = c.canal;
    row.cod_prov = c.prov;
    row.renta = c.renta;
    row.segmento = c.segment_missing ? nullptr : kSegments[c.segment_at(month)];
}

}  // namespace

// ---------------------------------------------------------------------------------------------

SyntheticSantander::SyntheticSantander(SyntheticConfig config) : config_(config) {
    if (config_.months < 1) fail(ErrorKind::InvalidParameter, "synthetic data needs at least one month");
    if (config_.first_month < 0) fail(ErrorKind::InvalidParameter, "first_month must not be negative");
    if (!(config_.blank_demographics_rate >= 0 && config_.blank_demographics_rate <= 1))
        fail(ErrorKind::InvalidParameter, "blank_demographics_rate must be in [0, 1]");
    for (const PlantedChange &p : config_.planted) {
        if (p.from_month < 0) fail(ErrorKind::InvalidParameter, "planted from_month must not be negative");
        if (p.segment < -1 || p.segment > 2) fail(ErrorKind::InvalidParameter, "planted segment must be -1, 0, 1 or 2");
        const bool swap = p.swap_a >= 0 || p.swap_b >= 0;
        if (swap && (p.swap_a < 0 || p.swap_a >= kProducts || p.swap_b < 0 || p.swap_b >= kProducts || p.swap_a == p.swap_b))
            fail(ErrorKind::InvalidParameter, "planted swap needs two different products");
        const bool uptake = p.uptake_product >= 0;
        if (p.uptake_product < -1 || p.uptake_product >= kProducts)
            fail(ErrorKind::InvalidParameter, "planted uptake product out of range");
        if (uptake && !(p.uptake_factor > 0 && std::isfinite(p.uptake_factor)))
            fail(ErrorKind::InvalidParameter, "planted uptake factor must be positive and finite");
        const bool shift = p.shift_column != PlantedColumn::None;
        if (shift && !(p.shift_factor > 0 && std::isfinite(p.shift_factor)))
            fail(ErrorKind::InvalidParameter, "planted shift factor must be positive and finite");
        if (!swap && !uptake && !shift)
            fail(ErrorKind::InvalidParameter, "a planted change needs a swap, an uptake or a shift");
    }
}

int32_t synthetic_segment_index(const char *segmento) {
    if (!segmento) return -1;
    for (int32_t i = 0; i < 3; ++i)
        if (std::strcmp(segmento, kSegments[i]) == 0) return i;
    return -1;
}

int32_t synthetic_product_index(const char *column) {
    if (!column) return -1;
    for (size_t i = 0; i < santander::kProductColumns.size(); ++i)
        if (std::strcmp(column, santander::kProductColumns[i]) == 0) return int32_t(i);
    return -1;
}

void SyntheticSantander::customer(int64_t index, std::vector<SyntheticRow> &out) const {
    customer(index, out, nullptr);
}

void SyntheticSantander::customer(int64_t index, std::vector<SyntheticRow> &out,
                                  std::vector<AddProbabilities> *add_probability) const {
    if (index < 0) fail(ErrorKind::InvalidParameter, "customer index must not be negative");
    out.clear();
    if (add_probability) add_probability->clear();
    Customer c;
    draw_customer(config_, index, c);
    const int32_t end = std::min(config_.first_month + config_.months, c.leave_month);
    const int32_t start = std::max(c.join_month, config_.first_month - kBurnIn);
    const bool joiner = start == c.join_month;
    initial_holdings(c, start, joiner);
    AddProbabilities probs;
    for (int32_t month = start; month < end; ++month) {
        bool emit = month >= config_.first_month;
        bool first_row = month == start || month == config_.first_month;
        if (month > start) step(c, month, emit && add_probability && !first_row ? probs.data() : nullptr, config_.planted);
        if (!emit) continue;
        out.emplace_back();
        fill_row(config_, c, month, out.back());
        for (const PlantedChange &change : config_.planted) plant_output(change, c, out.back());
        if (add_probability) {
            if (first_row) probs.fill(0.0f);
            add_probability->push_back(probs);
        }
    }
}

const char *santander_province_name(int32_t cod_prov) {
    if (cod_prov < 1 || cod_prov > 52) return nullptr;
    return kProvinces[cod_prov];
}

// ---------------------------------------------------------------------------------------------
// Kaggle CSV.

const char kKaggleCsvHeader[] =
    "\"fecha_dato\",\"ncodpers\",\"ind_empleado\",\"pais_residencia\",\"sexo\",\"age\",\"fecha_alta\","
    "\"ind_nuevo\",\"antiguedad\",\"indrel\",\"ult_fec_cli_1t\",\"indrel_1mes\",\"tiprel_1mes\",\"indresi\","
    "\"indext\",\"conyuemp\",\"canal_entrada\",\"indfall\",\"tipodom\",\"cod_prov\",\"nomprov\","
    "\"ind_actividad_cliente\",\"renta\",\"segmento\",\"ind_ahor_fin_ult1\",\"ind_aval_fin_ult1\","
    "\"ind_cco_fin_ult1\",\"ind_cder_fin_ult1\",\"ind_cno_fin_ult1\",\"ind_ctju_fin_ult1\",\"ind_ctma_fin_ult1\","
    "\"ind_ctop_fin_ult1\",\"ind_ctpp_fin_ult1\",\"ind_deco_fin_ult1\",\"ind_deme_fin_ult1\",\"ind_dela_fin_ult1\","
    "\"ind_ecue_fin_ult1\",\"ind_fond_fin_ult1\",\"ind_hip_fin_ult1\",\"ind_plan_fin_ult1\",\"ind_pres_fin_ult1\","
    "\"ind_reca_fin_ult1\",\"ind_tjcr_fin_ult1\",\"ind_valo_fin_ult1\",\"ind_viv_fin_ult1\",\"ind_nomina_ult1\","
    "\"ind_nom_pens_ult1\",\"ind_recibo_ult1\"";

namespace {

struct Writer {
    char *p;
    void ch(char c) { *p++ = c; }
    void str(const char *s) {
        while (*s) *p++ = *s++;
    }
    void comma() { *p++ = ','; }
    void uint_padded(int64_t v, int width) {  // right-aligned in `width` characters
        char tmp[24];
        auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
        int len = int(r.ptr - tmp);
        for (int i = len; i < width; ++i) *p++ = ' ';
        std::memcpy(p, tmp, size_t(len));
        p += len;
    }
    void int_or_na(int32_t v, int width) {  // " 1", "99", or "NA" right-aligned
        if (v < 0) {
            for (int i = 2; i < width; ++i) *p++ = ' ';
            str("NA");
        } else {
            uint_padded(v, width);
        }
    }
    void two(int v) {
        *p++ = char('0' + v / 10);
        *p++ = char('0' + v % 10);
    }
    void date(int32_t month, int day) {
        int year = month / 12;
        uint_padded(year, 4);
        *p++ = '-';
        two(month % 12 + 1);
        *p++ = '-';
        two(day);
    }
    void opt_char(char c) {
        if (c) *p++ = c;
    }
    void opt_str(const char *s) {
        if (s) str(s);
    }
};

}  // namespace

size_t format_kaggle_csv_row(const SyntheticRow &row, char *buffer) {
    Writer w{buffer};
    const bool blank = row.indrel < 0 && row.age < 0 && row.ind_nuevo < 0;
    w.date(row.month, 28);
    w.comma();
    w.uint_padded(row.ncodpers, 0);
    w.comma();
    w.opt_char(row.ind_empleado);
    w.comma();
    w.opt_str(row.pais_residencia);
    w.comma();
    w.opt_char(row.sexo);
    w.comma();
    w.int_or_na(row.age, 3);
    w.comma();
    if (row.fecha_alta_month >= 0) w.date(row.fecha_alta_month, row.fecha_alta_day);
    w.comma();
    w.int_or_na(row.ind_nuevo, 2);
    w.comma();
    w.int_or_na(row.antiguedad, 7);
    w.comma();
    w.int_or_na(row.indrel, 2);
    w.comma();
    // ult_fec_cli_1t: last date as primary customer, only for indrel 99
    if (row.indrel == 99) w.date(row.month, 1 + int(uint64_t(row.ncodpers * 7 + row.month) % 28));
    w.comma();
    // indrel_1mes: "1" or "1.0", as mixed in the real file
    if (!blank) w.str(mix64(uint64_t(row.ncodpers) * 31 + uint64_t(row.month)) & 1 ? "1.0" : "1");
    w.comma();
    w.opt_char(row.tiprel_1mes);
    w.comma();
    w.opt_char(row.indresi);
    w.comma();
    w.opt_char(row.indext);
    w.comma();
    w.comma();  // conyuemp: always empty
    w.opt_str(row.canal_entrada);
    w.comma();
    if (!blank) w.ch('N');  // indfall
    w.comma();
    w.str(blank ? "NA" : " 1");  // tipodom
    w.comma();
    w.int_or_na(row.cod_prov, 2);
    w.comma();
    w.ch('"');
    w.opt_str(santander_province_name(row.cod_prov));
    w.ch('"');
    w.comma();
    w.int_or_na(row.ind_actividad_cliente, 2);
    w.comma();
    if (!std::isnan(row.renta)) {
        auto r = std::to_chars(w.p, w.p + 64, row.renta, std::chars_format::fixed);  // shortest round-trip
        w.p = r.ptr;
    }
    w.comma();
    w.opt_str(row.segmento);
    for (int p = 0; p < 24; ++p) {
        w.comma();
        if (p == NOMINA || p == NOM_PENS) w.ch(' ');
        w.ch(row.products[p] ? '1' : '0');
    }
    w.ch('\n');
    return size_t(w.p - buffer);
}

void write_kaggle_csv_header(std::ostream &out) {
    out.write(kKaggleCsvHeader, std::streamsize(sizeof kKaggleCsvHeader - 1));
    out.put('\n');
}

void write_kaggle_csv_row(std::ostream &out, const SyntheticRow &row) {
    char buffer[kKaggleCsvRowMax];
    size_t n = format_kaggle_csv_row(row, buffer);
    out.write(buffer, std::streamsize(n));
}

}  // namespace recsys
