#!/usr/bin/env bash
# Integration test for sql/santander_loader.sql and tools/load_santander_csv.sh.
#
# Starts nothing: it expects PGHOST/PGPORT/PGUSER/PGDATABASE (the standard libpq environment) to point at a running
# PostgreSQL 15+ server where it may create and drop the schemas santander_it_sample and santander_it_dirty.
# The real Kaggle sample (trainsubset.csv, 9,999 rows of train_ver2.csv) is used when it exists at
# /work/shared/data/santander/trainsubset.csv or ../shared/data/santander/trainsubset.csv (relative to the repo
# root); otherwise that part is skipped and the rest still runs.
# Exit status 1 when any assertion fails. Last line: "N passed, M failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
loader_sql=$root/sql/santander_loader.sql
loader_sh=$root/tools/load_santander_csv.sh

if [[ -n ${PSQL:-} ]]; then psql_bin=$PSQL
elif command -v psql >/dev/null 2>&1; then psql_bin=$(command -v psql)
else psql_bin=/usr/lib/postgresql/15/bin/psql; fi
export PSQL=$psql_bin     # the loader script uses the same psql

S=santander_it_sample
D=santander_it_dirty
tmp=$(mktemp -d)
cleanup() {
    "$psql_bin" -X -q -c "DROP SCHEMA IF EXISTS $S CASCADE" -c "DROP SCHEMA IF EXISTS $D CASCADE" \
        >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1" >&2; }

# q SQL: run one query, print the unaligned, tuples-only result.
q() { "$psql_bin" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
# check NAME EXPECTED SQL: the query's result must equal EXPECTED.
check() {
    local name=$1 want=$2 sql=$3 got
    if ! got=$(q "$sql" 2>&1); then bad "$name: query failed: $got"; return; fi
    if [[ $got == "$want" ]]; then ok "$name"; else bad "$name: expected '$want', got '$got'"; fi
}

# Server reachable?
if ! q "SELECT 1" >/dev/null; then
    echo "cannot connect to PostgreSQL (set PGHOST/PGPORT/PGUSER/PGDATABASE)" >&2
    echo "0 passed, 1 failed"; exit 1
fi
q "DROP SCHEMA IF EXISTS $S CASCADE; DROP SCHEMA IF EXISTS $D CASCADE" >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------------------------
# 1. Objects: created idempotently, right shapes.
# ---------------------------------------------------------------------------------------------------------------
ddl() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 -v schema="$1" -f "$loader_sql" >/dev/null; }
if ddl "$S" && ddl "$S"; then ok "DDL runs twice without error (idempotent)"; else bad "DDL is not idempotent"; fi

# Default schema is 'santander': run the DDL in a transaction that is rolled back, so nothing is left behind.
got=$("$psql_bin" -X -q -At -v ON_ERROR_STOP=1 -c "BEGIN" -f "$loader_sql" \
      -c "SELECT to_regclass('santander.raw_snapshots') IS NOT NULL AND to_regclass('santander.clean_snapshots')
                 IS NOT NULL AND to_regclass('santander.snapshots') IS NOT NULL" -c "ROLLBACK" 2>&1 | tail -n 1) || true
if [[ $got == t ]]; then ok "default schema is santander"; else bad "default schema: got '$got'"; fi

raw_cols='fecha_dato,ncodpers,ind_empleado,pais_residencia,sexo,age,fecha_alta,ind_nuevo,antiguedad,indrel,ult_fec_cli_1t,indrel_1mes,tiprel_1mes,indresi,indext,conyuemp,canal_entrada,indfall,tipodom,cod_prov,nomprov,ind_actividad_cliente,renta,segmento,ind_ahor_fin_ult1,ind_aval_fin_ult1,ind_cco_fin_ult1,ind_cder_fin_ult1,ind_cno_fin_ult1,ind_ctju_fin_ult1,ind_ctma_fin_ult1,ind_ctop_fin_ult1,ind_ctpp_fin_ult1,ind_deco_fin_ult1,ind_deme_fin_ult1,ind_dela_fin_ult1,ind_ecue_fin_ult1,ind_fond_fin_ult1,ind_hip_fin_ult1,ind_plan_fin_ult1,ind_pres_fin_ult1,ind_reca_fin_ult1,ind_tjcr_fin_ult1,ind_valo_fin_ult1,ind_viv_fin_ult1,ind_nomina_ult1,ind_nom_pens_ult1,ind_recibo_ult1'
products='ind_ahor_fin_ult1 ind_aval_fin_ult1 ind_cco_fin_ult1 ind_cder_fin_ult1 ind_cno_fin_ult1 ind_ctju_fin_ult1 ind_ctma_fin_ult1 ind_ctop_fin_ult1 ind_ctpp_fin_ult1 ind_deco_fin_ult1 ind_deme_fin_ult1 ind_dela_fin_ult1 ind_ecue_fin_ult1 ind_fond_fin_ult1 ind_hip_fin_ult1 ind_plan_fin_ult1 ind_pres_fin_ult1 ind_reca_fin_ult1 ind_tjcr_fin_ult1 ind_valo_fin_ult1 ind_viv_fin_ult1 ind_nomina_ult1 ind_nom_pens_ult1 ind_recibo_ult1'
clean_shape='fecha_dato date,ncodpers bigint,ind_empleado text,pais_residencia text,sexo text,age integer,fecha_alta date,ind_nuevo integer,antiguedad integer,indrel integer,tiprel_1mes text,indresi text,indext text,canal_entrada text,cod_prov integer,ind_actividad_cliente integer,renta double precision,segmento text'
for p in $products; do clean_shape+=",$p smallint"; done
# shellcheck disable=SC2086  # word splitting of $products is intended
nullflags=$(printf ' OR %s IS NULL' $products); nullflags=${nullflags# OR }   # any flag NULL
shape_sql() {  # columns of a relation as "name type,..." in order
    echo "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
          FROM pg_attribute WHERE attrelid = '$1'::regclass AND attnum > 0 AND NOT attisdropped"
}
check "raw_snapshots: 48 text columns in file order" \
      "$(echo "$raw_cols" | sed 's/,/ text,/g; s/$/ text/')" "$(shape_sql $S.raw_snapshots)"
check "clean_snapshots: columns and types" "$clean_shape" "$(shape_sql $S.clean_snapshots)"
check "snapshots: same shape as clean_snapshots" "$clean_shape" "$(shape_sql $S.snapshots)"
check "snapshots: primary key (ncodpers, fecha_dato)" "ncodpers,fecha_dato" \
      "SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_constraint c
         CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conrelid = '$S.snapshots'::regclass AND c.contype = 'p'"
check "snapshots: index on (fecha_dato)" "1" \
      "SELECT count(*) FROM pg_index i WHERE i.indrelid = '$S.snapshots'::regclass
          AND i.indkey::text = (SELECT attnum::text FROM pg_attribute
                                 WHERE attrelid = '$S.snapshots'::regclass AND attname = 'fecha_dato')"
check "snapshots: product flags NOT NULL" "24" \
      "SELECT count(*) FROM pg_attribute WHERE attrelid = '$S.snapshots'::regclass AND attnotnull
          AND attname LIKE 'ind\_%ult1'"

# ---------------------------------------------------------------------------------------------------------------
# 2. The real Kaggle sample.
# ---------------------------------------------------------------------------------------------------------------
sample=
for c in /work/shared/data/santander/trainsubset.csv "$root/../shared/data/santander/trainsubset.csv"; do
    if [[ -f $c ]]; then sample=$c; break; fi
done
if [[ -z $sample ]]; then
    echo "skip - real sample trainsubset.csv not found (looked in /work/shared and ../shared): sample checks skipped"
else
    echo "# sample: $sample"
    if out=$("$loader_sh" "$sample" "$S" 2>&1); then ok "sample loads with tools/load_santander_csv.sh"
    else bad "sample load failed: $out"; fi
    check "sample: 9,999 rows loaded" 9999 "SELECT count(*) FROM $S.snapshots"
    check "sample: 9,999 distinct customers" 9999 "SELECT count(DISTINCT ncodpers) FROM $S.snapshots"
    check "sample: fecha_dato all 2015-01-28" "2015-01-28|9999" \
          "SELECT string_agg(DISTINCT fecha_dato::text, ','), count(*) FILTER (WHERE fecha_dato = '2015-01-28')
             FROM $S.snapshots"
    check "sample: 50 rows with NULL age (' NA')" 50 "SELECT count(*) FROM $S.snapshots WHERE age IS NULL"
    check "sample: 1,899 rows with NULL renta (empty)" 1899 "SELECT count(*) FROM $S.snapshots WHERE renta IS NULL"
    check "sample: ages within 0..120 (observed 4..96)" "0|4|96" \
          "SELECT count(*) FILTER (WHERE age NOT BETWEEN 0 AND 120), min(age), max(age) FROM $S.snapshots"
    check "sample: 50 rows with NULL antiguedad, none negative" "50|0" \
          "SELECT count(*) FILTER (WHERE antiguedad IS NULL), count(*) FILTER (WHERE antiguedad < 0)
             FROM $S.snapshots"
    check "sample: customer 1375586 (age 35, renta 87218.1, segmento, cco=1, first row)" \
          "2015-01-28|N|ES|H|35|2015-01-12|0|6|1|A|S|N|KHL|29|1|87218.1|02 - PARTICULARES|1|0|0" \
          "SELECT concat_ws('|', fecha_dato, ind_empleado, pais_residencia, sexo, age, fecha_alta, ind_nuevo,
                  antiguedad, indrel, tiprel_1mes, indresi, indext, canal_entrada, cod_prov, ind_actividad_cliente,
                  renta, segmento, ind_cco_fin_ult1, ind_nomina_ult1, ind_recibo_ult1)
             FROM $S.snapshots WHERE ncodpers = 1375586"
    coruna=$(grep -c '"CORUÑA, A"' "$sample" || true)
    check "sample: quoted \"CORUÑA, A\" rows load with cod_prov 15 ($coruna in file)" "$coruna" \
          "SELECT count(*) FROM $S.snapshots WHERE cod_prov = 15"
    check "sample: $coruna > 0 CORUÑA rows in the file" t "SELECT $coruna > 0"
    check "sample: product sums (cco 9295, nomina 218, nom_pens 240, recibo 796)" "9295|218|240|796" \
          "SELECT concat_ws('|', sum(ind_cco_fin_ult1), sum(ind_nomina_ult1), sum(ind_nom_pens_ult1),
                  sum(ind_recibo_ult1)) FROM $S.snapshots"
    check "sample: raw_snapshots emptied after the load" 0 "SELECT count(*) FROM $S.raw_snapshots"
    # The real rows, dirty values cleaned, feed the model like generated ones: a model fitted to
    # them scores every real customer (NULL age, renta or antiguedad encoded as missing).
    if [[ $(q "SELECT count(*) FROM pg_extension WHERE extname = 'recsys'") == 1 ]]; then
        v=$(q "SELECT recsys.register_model('kaggle_sample_$$', recsys.untrained_model('$S.snapshots', window_months => 4, hidden => 8))")
        check "sample: every real customer scored, 7 products each, none already held" "9999|t|0" \
              "SELECT concat_ws('|', count(*), bool_and(cardinality(products) = 7),
                      count(*) FILTER (WHERE 'ind_cco_fin_ult1' = ANY (products) AND customer_id IN
                                       (SELECT ncodpers FROM $S.snapshots WHERE ind_cco_fin_ult1 = 1)))
                 FROM recsys.score_all('kaggle_sample_$$', 7, version => $v)"
        check "sample: the fitted spec learnt the real vocabularies (sexo H/V, 3 segments)" "H,V|3" \
              "SELECT concat_ws('|', (SELECT string_agg(v, ',' ORDER BY v) FROM jsonb_array_elements_text(f.value -> 'vocabulary') v
                                      WHERE f.value ->> 'column' = 'sexo'),
                      (SELECT jsonb_array_length(g.value -> 'vocabulary') FROM jsonb_array_elements(feature_spec -> 'features') g
                        WHERE g.value ->> 'column' = 'segmento'))
                 FROM recsys.models, jsonb_array_elements(feature_spec -> 'features') f
                WHERE name = 'kaggle_sample_$$' AND f.value ->> 'column' = 'sexo'"
        q "DELETE FROM recsys.model_events WHERE name = 'kaggle_sample_$$'; DELETE FROM recsys.models WHERE name = 'kaggle_sample_$$'" >/dev/null
    fi
    # The view itself, on the staged sample (staged in a transaction that is rolled back).
    got=$("$psql_bin" -X -q -At -v ON_ERROR_STOP=1 <<SQL 2>&1 | tail -n 1
BEGIN;
\\copy $S.raw_snapshots FROM '$sample' WITH (FORMAT csv, HEADER true)
SELECT concat_ws('|',
       (SELECT count(*) FROM $S.clean_snapshots),
       (SELECT count(*) FROM $S.clean_snapshots WHERE $nullflags),
       (SELECT count(*) FROM $S.raw_snapshots WHERE btrim(ind_nomina_ult1) = 'NA'),
       (SELECT count(*) FROM $S.clean_snapshots c JOIN $S.raw_snapshots r ON r.ncodpers::bigint = c.ncodpers
         WHERE btrim(r.ind_nomina_ult1) = 'NA' AND c.ind_nomina_ult1 = 0 AND c.ind_nom_pens_ult1 = 0));
ROLLBACK;
SQL
) || true
    if [[ $got == "9999|0|11|11" ]]; then ok "sample: clean view has 9,999 rows, no NULL product flags, 11 NA nomina -> 0"
    else bad "sample: clean view check: expected '9999|0|11|11', got '$got'"; fi
    # Re-loading the same file is a no-op (ON CONFLICT DO NOTHING).
    if out=$("$loader_sh" "$sample" "$S" 2>&1); then ok "sample: re-load succeeds"
    else bad "sample: re-load failed: $out"; fi
    check "sample: re-load keeps 9,999 rows" 9999 "SELECT count(*) FROM $S.snapshots"
fi

# ---------------------------------------------------------------------------------------------------------------
# 3. A hand-written dirty CSV: 4 valid edge-case rows and one row with an invalid product flag '2'.
# ---------------------------------------------------------------------------------------------------------------
header=$(echo "$raw_cols" | sed 's/\([^,]*\)/"\1"/g')
p21='0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0'       # the 21 *_fin_ult1 flags (cco held)
cat > "$tmp/dirty5.csv" <<CSV
$header
2015-02-28,900001,N,ES,H, NA,2015-01-12, 0,     NA, 1,,1.0,A,S,N,, KHE ,N, 1,15,"CORUÑA, A", 1,,02 - PARTICULARES,$p21,NA,NA,1
2015-02-28,900002,N,ES,V,130,2014-03-01, 1,-999999, 1,,1,I,S,N,,KHD,N, 1,28,"MADRID", 0,   NA,03 - UNIVERSITARIO,$p21, 1, 0,0
2015-02-28,900003,N,ES, V ,  0,2015-02-10, 1,     -3,1.0,,3.0,A,S,N,,KFC,N, 1, 8,"BARCELONA", 1,122179.11000000002,01 - TOP,$p21, 0, 1,1
2015-02-28,900004,,,,     NA,,NA,     NA,NA,,,,,,,,,NA,,,NA,,,$p21, 0, 0,0
2015-02-28,900005,N,ES,H, 40,2010-05-05, 0,     60, 1,,1,A,S,N,,KHE,N, 1,29,"MALAGA", 1,50000.5,02 - PARTICULARES,$p21, 0, 0,2
CSV
head -n 5 "$tmp/dirty5.csv" > "$tmp/dirty4.csv"
# Same rows a month later (so they would be new rows if a partial load could commit).
sed 's/^2015-02-28,/2015-03-28,/' "$tmp/dirty5.csv" > "$tmp/dirty5_march.csv"

# 3a. The file with the invalid flag fails as a whole, with a clear error, into an empty schema.
if out=$("$loader_sh" "$tmp/dirty5.csv" "$D" 2>&1); then bad "dirty: load with product value '2' succeeded"
else
    if grep -q "invalid product flag ind_recibo_ult1='2' (ncodpers 900005" <<<"$out"; then
        ok "dirty: invalid product value '2' fails the load with a clear error"
    else bad "dirty: load failed but without the expected message: $out"; fi
fi
check "dirty: failed load leaves snapshots empty" 0 "SELECT count(*) FROM $D.snapshots"
check "dirty: failed load leaves raw_snapshots empty" 0 "SELECT count(*) FROM $D.raw_snapshots"

# 3b. The 4 valid rows load and are cleaned as documented.
if out=$("$loader_sh" "$tmp/dirty4.csv" "$D" 2>&1); then ok "dirty: 4 valid edge-case rows load"
else bad "dirty: 4 valid rows failed to load: $out"; fi
check "dirty: 4 rows" 4 "SELECT count(*) FROM $D.snapshots"
row() { echo "SELECT concat_ws('|', coalesce(age::text,'∅'), coalesce(antiguedad::text,'∅'), coalesce(renta::text,'∅'),
              coalesce(sexo,'∅'), coalesce(canal_entrada,'∅'), coalesce(indrel::text,'∅'), coalesce(cod_prov::text,'∅'),
              ind_nomina_ult1, ind_nom_pens_ult1, ind_recibo_ult1)
         FROM $D.snapshots WHERE ncodpers = $1"; }
check "dirty 900001: ' NA' age, NA antiguedad, empty renta -> NULL; ' KHE ' trimmed; CORUÑA cod_prov 15; NA nomina/nom_pens -> 0" \
      "∅|∅|∅|H|KHE|1|15|0|0|1" "$(row 900001)"
check "dirty 900002: age 130 -> NULL; antiguedad -999999 -> NULL; renta '   NA' -> NULL" \
      "∅|∅|∅|V|KHD|1|28|1|0|0" "$(row 900002)"
check "dirty 900003: age 0 kept; antiguedad -3 -> NULL; ' V ' trimmed; indrel '1.0' -> 1; renta float noise" \
      "0|∅|122179.11000000002|V|KFC|1|8|0|1|1" "$(row 900003)"
check "dirty 900004: blank demographics -> NULLs, products present" \
      "∅|∅|∅|∅|∅|∅|∅|0|0|0" "$(row 900004)"
check "dirty 900004: all demographic columns NULL" \
      "0" "SELECT num_nonnulls(ind_empleado, pais_residencia, sexo, age, fecha_alta, ind_nuevo, antiguedad, indrel,
                  tiprel_1mes, indresi, indext, canal_entrada, cod_prov, ind_actividad_cliente, renta, segmento)
             FROM $D.snapshots WHERE ncodpers = 900004"
check "dirty: no NULL product flags, cco held by all 4" "4|0" \
      "SELECT sum(ind_cco_fin_ult1), count(*) FILTER (WHERE $nullflags) FROM $D.snapshots"

# 3c. A second month with an invalid flag: the whole load is rolled back, snapshots unchanged.
before=$(q "SELECT md5(string_agg(s::text, ';' ORDER BY ncodpers, fecha_dato)) FROM $D.snapshots s")
if out=$("$loader_sh" "$tmp/dirty5_march.csv" "$D" 2>&1); then bad "dirty: March load with '2' succeeded"
else ok "dirty: March load with '2' fails"; fi
check "dirty: snapshots unchanged after the failed load (no 2015-03-28 rows)" "$before|0" \
      "SELECT md5(string_agg(s::text, ';' ORDER BY ncodpers, fecha_dato)) || '|' ||
              (SELECT count(*) FROM $D.snapshots WHERE fecha_dato = '2015-03-28') FROM $D.snapshots s"
# The clean view itself raises on the bad value.
got=$("$psql_bin" -X -q -At <<SQL 2>&1 || true
BEGIN;
\\copy $D.raw_snapshots FROM '$tmp/dirty5_march.csv' WITH (FORMAT csv, HEADER true)
-- select the flag column: a bare count(*) would not evaluate it
SELECT sum(ind_recibo_ult1) FROM $D.clean_snapshots;
ROLLBACK;
SQL
)
if grep -q 'invalid input syntax for type smallint: "invalid product flag ind_recibo_ult1' <<<"$got"; then
    ok "dirty: selecting from clean_snapshots raises on the invalid flag"
else bad "dirty: clean_snapshots did not raise: $got"; fi

# 3d. A valid second month adds rows next to the first (several months per customer).
sed '$d' "$tmp/dirty5_march.csv" > "$tmp/dirty4_march.csv"
if out=$("$loader_sh" "$tmp/dirty4_march.csv" "$D" 2>&1); then ok "dirty: valid March rows load"
else bad "dirty: valid March rows failed: $out"; fi
check "dirty: two months per customer" "8|4|2" \
      "SELECT concat_ws('|', count(*), count(DISTINCT ncodpers), count(DISTINCT fecha_dato)) FROM $D.snapshots"

# 3e. A header with the wrong column order is refused (HEADER match).
awk -F, 'NR==1{t=$2; $2=$1; $1=t; OFS=","; print; next} {print}' OFS=, "$tmp/dirty4.csv" > "$tmp/badheader.csv"
if out=$("$loader_sh" "$tmp/badheader.csv" "$D" 2>&1); then bad "dirty: swapped header accepted"
elif grep -qi 'header' <<<"$out"; then ok "dirty: a header in the wrong order is refused"
else bad "dirty: swapped header failed without a header message: $out"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
