-- santander_loader.sql: stage and clean the Kaggle "Santander Product Recommendation" train_ver2.csv format.
--
-- This is a plain psql script, NOT part of the recsys extension. It is idempotent: running it again leaves the
-- objects in place (tables are created IF NOT EXISTS; the helper functions and the view are CREATE OR REPLACE).
--
-- psql variables:
--   schema  target schema (default: santander). Created if missing.
--   load    on/off (default: off). When on, the script also loads one CSV, read from psql's standard input
--           (pstdin), in ONE transaction: raw_snapshots is emptied, the CSV is \copy'd into it, the cleaned rows
--           are inserted into snapshots (ON CONFLICT DO NOTHING), raw_snapshots is emptied again, then COMMIT and
--           ANALYZE. Any bad value (e.g. a product flag other than 0/1/NA) aborts the whole load and leaves
--           snapshots unchanged.
--
-- Usage:
--   psql -v ON_ERROR_STOP=1 -v schema=santander -f sql/santander_loader.sql                    # objects only
--   psql -v ON_ERROR_STOP=1 -v schema=santander -v load=on -f sql/santander_loader.sql < train_ver2.csv
--   tools/load_santander_csv.sh train_ver2.csv [schema]                                        # same, wrapped
-- Staging by hand works too:
--   \copy santander.raw_snapshots FROM 'train_ver2.csv' WITH (FORMAT csv, HEADER true)
--   INSERT INTO santander.snapshots SELECT * FROM santander.clean_snapshots ON CONFLICT DO NOTHING;
--
-- Nothing here assumes a single month: snapshots is keyed by (ncodpers, fecha_dato), so a file holding any number
-- of monthly snapshots (the full Kaggle file holds 17, the generator's output any number) loads the same way,
-- and several files can be loaded one after another.

\if :{?schema}
\else
\set schema santander
\endif
\if :{?load}
\else
\set load off
\endif

SET client_min_messages = warning;   -- silence "already exists, skipping" notices on re-runs

CREATE SCHEMA IF NOT EXISTS :"schema";

-- 1. Staging table: the 48 Kaggle columns, all text, in file order, so the file loads as is with
--    \copy <schema>.raw_snapshots FROM 'file' WITH (FORMAT csv, HEADER true).
--    UNLOGGED: it only ever holds a file in transit (the loader empties it at the end of each load), so it needs
--    no WAL; after a crash it comes back empty, which is its resting state anyway.
CREATE UNLOGGED TABLE IF NOT EXISTS :"schema".raw_snapshots (
    fecha_dato            text,
    ncodpers              text,
    ind_empleado          text,
    pais_residencia       text,
    sexo                  text,
    age                   text,
    fecha_alta            text,
    ind_nuevo             text,
    antiguedad            text,
    indrel                text,
    ult_fec_cli_1t        text,
    indrel_1mes           text,
    tiprel_1mes           text,
    indresi               text,
    indext                text,
    conyuemp              text,
    canal_entrada         text,
    indfall               text,
    tipodom               text,
    cod_prov              text,
    nomprov               text,
    ind_actividad_cliente text,
    renta                 text,
    segmento              text,
    ind_ahor_fin_ult1     text,
    ind_aval_fin_ult1     text,
    ind_cco_fin_ult1      text,
    ind_cder_fin_ult1     text,
    ind_cno_fin_ult1      text,
    ind_ctju_fin_ult1     text,
    ind_ctma_fin_ult1     text,
    ind_ctop_fin_ult1     text,
    ind_ctpp_fin_ult1     text,
    ind_deco_fin_ult1     text,
    ind_deme_fin_ult1     text,
    ind_dela_fin_ult1     text,
    ind_ecue_fin_ult1     text,
    ind_fond_fin_ult1     text,
    ind_hip_fin_ult1      text,
    ind_plan_fin_ult1     text,
    ind_pres_fin_ult1     text,
    ind_reca_fin_ult1     text,
    ind_tjcr_fin_ult1     text,
    ind_valo_fin_ult1     text,
    ind_viv_fin_ult1      text,
    ind_nomina_ult1       text,
    ind_nom_pens_ult1     text,
    ind_recibo_ult1       text
);

-- Helper functions. They are plain SQL expressions (LANGUAGE sql, IMMUTABLE), so the planner inlines them into
-- the view: no per-row function-call overhead on the 13.6 million rows of the full file.

-- Rule: trim all text (spaces and tabs both sides); 'NA' and '' become NULL. COPY ... CSV already turns an empty
-- unquoted field into NULL; a quoted "" or a padded '   ' or ' NA' ends up NULL here.
CREATE OR REPLACE FUNCTION :"schema".na_text(v text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(NULLIF(btrim(v, E' \t'), 'NA'), '');

-- Rule: integer fields (age, antiguedad, ind_nuevo, indrel, cod_prov, ind_actividad_cliente) are parsed after the
-- trim above, NULL when NA or empty. A trailing '.0' is accepted (the Kaggle file writes some codes as 1.0, as in
-- indrel_1mes); anything else that is not an integer ('1.5', 'abc') makes the cast fail loudly.
CREATE OR REPLACE FUNCTION :"schema".na_int(v text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (CASE WHEN :"schema".na_text(v) LIKE '%.0' THEN left(:"schema".na_text(v), -2)
                 ELSE :"schema".na_text(v) END)::integer;

-- Rule for the 24 product flags: trimmed; '0' -> 0, '1' -> 1; NA (or empty) -> 0. The Kaggle file lacks the flag
-- for some rows (ind_nomina_ult1 / ind_nom_pens_ult1 are NA in 16,063 rows of train_ver2.csv, 11 rows of
-- trainsubset.csv); such a product is treated as not held, which is how the competitors treated it.
-- Any other value fails loudly: the ELSE branch casts a message to smallint, which raises
--   invalid input syntax for type smallint: "invalid product flag ind_x_ult1='2' (ncodpers 123, fecha_dato ...)"
-- and aborts the statement (and so the whole load transaction).
CREATE OR REPLACE FUNCTION :"schema".product_flag(v text, col text, ncodpers text, fecha_dato text) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE coalesce(:"schema".na_text(v), '')
               WHEN '0' THEN 0::smallint
               WHEN '1' THEN 1::smallint
               WHEN ''  THEN 0::smallint
               ELSE ('invalid product flag ' || col || '=' || quote_literal(v)
                     || ' (ncodpers ' || coalesce(btrim(ncodpers), 'NULL')
                     || ', fecha_dato ' || coalesce(btrim(fecha_dato), 'NULL') || ')')::smallint
           END;

-- 2. The clean relation the model reads. Cleaning rules, column by column:
--   * every text column: trimmed, 'NA'/'' -> NULL (na_text).
--   * fecha_dato, fecha_alta: ISO dates (YYYY-MM-DD) after the trim; NULL when NA/empty.
--   * ncodpers: bigint after the trim.
--   * age: integer after the trim, NULL when NA; ages outside 0..120 -> NULL (the file has ages up to 164, which are
--     data-entry errors, not customers; 120 is above any verified human age).
--   * antiguedad (seniority in months): integer after the trim, NULL when NA; negative -> NULL, because seniority
--     cannot be negative: the Kaggle file uses -999999 as an "unknown" sentinel and has a few small negative
--     values that are data-entry errors. Keeping them would poison any feature scaled from this column.
--   * ind_nuevo, indrel, cod_prov, ind_actividad_cliente: integers (na_int); ' 1' / '99' / 'NA' in the file.
--   * renta: double precision, NULL when empty or NA (train_ver2 leaves it empty, test_ver2 writes '   NA').
--   * dropped, not in the clean relation: indrel_1mes (mixes 1 and 1.0 and 'P'; tiprel_1mes carries the
--     customer relation type), ult_fec_cli_1t (filled in a handful of rows), conyuemp (nearly always empty),
--     indfall, tipodom (constant 1), nomprov (cod_prov carries the province; nomprov is its name and is the
--     quoted field with commas such as "CORUÑA, A").
--   * the 24 product flags: smallint 0/1, never NULL (product_flag: NA -> 0, anything but 0/1 raises).
CREATE OR REPLACE VIEW :"schema".clean_snapshots AS
SELECT
    :"schema".na_text(r.fecha_dato)::date                                  AS fecha_dato,
    :"schema".na_text(r.ncodpers)::bigint                                  AS ncodpers,
    :"schema".na_text(r.ind_empleado)                                      AS ind_empleado,
    :"schema".na_text(r.pais_residencia)                                   AS pais_residencia,
    :"schema".na_text(r.sexo)                                              AS sexo,
    CASE WHEN :"schema".na_int(r.age) BETWEEN 0 AND 120
         THEN :"schema".na_int(r.age) END                                  AS age,
    :"schema".na_text(r.fecha_alta)::date                                  AS fecha_alta,
    :"schema".na_int(r.ind_nuevo)                                          AS ind_nuevo,
    CASE WHEN :"schema".na_int(r.antiguedad) >= 0
         THEN :"schema".na_int(r.antiguedad) END                           AS antiguedad,
    :"schema".na_int(r.indrel)                                             AS indrel,
    :"schema".na_text(r.tiprel_1mes)                                       AS tiprel_1mes,
    :"schema".na_text(r.indresi)                                           AS indresi,
    :"schema".na_text(r.indext)                                            AS indext,
    :"schema".na_text(r.canal_entrada)                                     AS canal_entrada,
    :"schema".na_int(r.cod_prov)                                           AS cod_prov,
    :"schema".na_int(r.ind_actividad_cliente)                              AS ind_actividad_cliente,
    :"schema".na_text(r.renta)::double precision                           AS renta,
    :"schema".na_text(r.segmento)                                          AS segmento,
    :"schema".product_flag(r.ind_ahor_fin_ult1, 'ind_ahor_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ahor_fin_ult1,
    :"schema".product_flag(r.ind_aval_fin_ult1, 'ind_aval_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_aval_fin_ult1,
    :"schema".product_flag(r.ind_cco_fin_ult1,  'ind_cco_fin_ult1',  r.ncodpers, r.fecha_dato) AS ind_cco_fin_ult1,
    :"schema".product_flag(r.ind_cder_fin_ult1, 'ind_cder_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_cder_fin_ult1,
    :"schema".product_flag(r.ind_cno_fin_ult1,  'ind_cno_fin_ult1',  r.ncodpers, r.fecha_dato) AS ind_cno_fin_ult1,
    :"schema".product_flag(r.ind_ctju_fin_ult1, 'ind_ctju_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ctju_fin_ult1,
    :"schema".product_flag(r.ind_ctma_fin_ult1, 'ind_ctma_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ctma_fin_ult1,
    :"schema".product_flag(r.ind_ctop_fin_ult1, 'ind_ctop_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ctop_fin_ult1,
    :"schema".product_flag(r.ind_ctpp_fin_ult1, 'ind_ctpp_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ctpp_fin_ult1,
    :"schema".product_flag(r.ind_deco_fin_ult1, 'ind_deco_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_deco_fin_ult1,
    :"schema".product_flag(r.ind_deme_fin_ult1, 'ind_deme_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_deme_fin_ult1,
    :"schema".product_flag(r.ind_dela_fin_ult1, 'ind_dela_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_dela_fin_ult1,
    :"schema".product_flag(r.ind_ecue_fin_ult1, 'ind_ecue_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_ecue_fin_ult1,
    :"schema".product_flag(r.ind_fond_fin_ult1, 'ind_fond_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_fond_fin_ult1,
    :"schema".product_flag(r.ind_hip_fin_ult1,  'ind_hip_fin_ult1',  r.ncodpers, r.fecha_dato) AS ind_hip_fin_ult1,
    :"schema".product_flag(r.ind_plan_fin_ult1, 'ind_plan_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_plan_fin_ult1,
    :"schema".product_flag(r.ind_pres_fin_ult1, 'ind_pres_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_pres_fin_ult1,
    :"schema".product_flag(r.ind_reca_fin_ult1, 'ind_reca_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_reca_fin_ult1,
    :"schema".product_flag(r.ind_tjcr_fin_ult1, 'ind_tjcr_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_tjcr_fin_ult1,
    :"schema".product_flag(r.ind_valo_fin_ult1, 'ind_valo_fin_ult1', r.ncodpers, r.fecha_dato) AS ind_valo_fin_ult1,
    :"schema".product_flag(r.ind_viv_fin_ult1,  'ind_viv_fin_ult1',  r.ncodpers, r.fecha_dato) AS ind_viv_fin_ult1,
    :"schema".product_flag(r.ind_nomina_ult1,   'ind_nomina_ult1',   r.ncodpers, r.fecha_dato) AS ind_nomina_ult1,
    :"schema".product_flag(r.ind_nom_pens_ult1, 'ind_nom_pens_ult1', r.ncodpers, r.fecha_dato) AS ind_nom_pens_ult1,
    :"schema".product_flag(r.ind_recibo_ult1,   'ind_recibo_ult1',   r.ncodpers, r.fecha_dato) AS ind_recibo_ult1
FROM :"schema".raw_snapshots AS r;

COMMENT ON VIEW :"schema".clean_snapshots IS
    'Cleaned Santander snapshots read from raw_snapshots; the rules are documented in sql/santander_loader.sql.';

-- 3. The materialized clean relation: same columns, types and order as clean_snapshots (so
--    INSERT ... SELECT * FROM clean_snapshots lines up), one row per customer and month, product flags NOT NULL
--    and CHECKed to 0/1 as a second line of defence behind product_flag().
CREATE TABLE IF NOT EXISTS :"schema".snapshots (
    fecha_dato            date             NOT NULL,
    ncodpers              bigint           NOT NULL,
    ind_empleado          text,
    pais_residencia       text,
    sexo                  text,
    age                   integer CHECK (age BETWEEN 0 AND 120),
    fecha_alta            date,
    ind_nuevo             integer,
    antiguedad            integer CHECK (antiguedad >= 0),
    indrel                integer,
    tiprel_1mes           text,
    indresi               text,
    indext                text,
    canal_entrada         text,
    cod_prov              integer,
    ind_actividad_cliente integer,
    renta                 double precision,
    segmento              text,
    ind_ahor_fin_ult1     smallint NOT NULL CHECK (ind_ahor_fin_ult1 IN (0, 1)),
    ind_aval_fin_ult1     smallint NOT NULL CHECK (ind_aval_fin_ult1 IN (0, 1)),
    ind_cco_fin_ult1      smallint NOT NULL CHECK (ind_cco_fin_ult1 IN (0, 1)),
    ind_cder_fin_ult1     smallint NOT NULL CHECK (ind_cder_fin_ult1 IN (0, 1)),
    ind_cno_fin_ult1      smallint NOT NULL CHECK (ind_cno_fin_ult1 IN (0, 1)),
    ind_ctju_fin_ult1     smallint NOT NULL CHECK (ind_ctju_fin_ult1 IN (0, 1)),
    ind_ctma_fin_ult1     smallint NOT NULL CHECK (ind_ctma_fin_ult1 IN (0, 1)),
    ind_ctop_fin_ult1     smallint NOT NULL CHECK (ind_ctop_fin_ult1 IN (0, 1)),
    ind_ctpp_fin_ult1     smallint NOT NULL CHECK (ind_ctpp_fin_ult1 IN (0, 1)),
    ind_deco_fin_ult1     smallint NOT NULL CHECK (ind_deco_fin_ult1 IN (0, 1)),
    ind_deme_fin_ult1     smallint NOT NULL CHECK (ind_deme_fin_ult1 IN (0, 1)),
    ind_dela_fin_ult1     smallint NOT NULL CHECK (ind_dela_fin_ult1 IN (0, 1)),
    ind_ecue_fin_ult1     smallint NOT NULL CHECK (ind_ecue_fin_ult1 IN (0, 1)),
    ind_fond_fin_ult1     smallint NOT NULL CHECK (ind_fond_fin_ult1 IN (0, 1)),
    ind_hip_fin_ult1      smallint NOT NULL CHECK (ind_hip_fin_ult1 IN (0, 1)),
    ind_plan_fin_ult1     smallint NOT NULL CHECK (ind_plan_fin_ult1 IN (0, 1)),
    ind_pres_fin_ult1     smallint NOT NULL CHECK (ind_pres_fin_ult1 IN (0, 1)),
    ind_reca_fin_ult1     smallint NOT NULL CHECK (ind_reca_fin_ult1 IN (0, 1)),
    ind_tjcr_fin_ult1     smallint NOT NULL CHECK (ind_tjcr_fin_ult1 IN (0, 1)),
    ind_valo_fin_ult1     smallint NOT NULL CHECK (ind_valo_fin_ult1 IN (0, 1)),
    ind_viv_fin_ult1      smallint NOT NULL CHECK (ind_viv_fin_ult1 IN (0, 1)),
    ind_nomina_ult1       smallint NOT NULL CHECK (ind_nomina_ult1 IN (0, 1)),
    ind_nom_pens_ult1     smallint NOT NULL CHECK (ind_nom_pens_ult1 IN (0, 1)),
    ind_recibo_ult1       smallint NOT NULL CHECK (ind_recibo_ult1 IN (0, 1)),
    PRIMARY KEY (ncodpers, fecha_dato)
);

CREATE INDEX IF NOT EXISTS snapshots_fecha_dato_idx ON :"schema".snapshots (fecha_dato);

RESET client_min_messages;

-- 4. Optional load (psql variable load=on): one transaction, CSV read from psql's standard input.
\if :load
BEGIN;
-- \copy does not expand psql variables, so the staging table is named through the search path.
SET LOCAL search_path = :"schema";
-- Start from an empty staging table (a load is one file); TRUNCATE is transactional and rolls back on failure.
TRUNCATE raw_snapshots;
-- HEADER match (PostgreSQL 15+): the header must name the 48 columns in file order, else the load fails.
\copy raw_snapshots FROM pstdin WITH (FORMAT csv, HEADER match, ENCODING 'UTF8')
-- Rows already present (same customer and month) are kept as they are, so re-loading a file is a no-op.
INSERT INTO snapshots SELECT * FROM clean_snapshots ON CONFLICT DO NOTHING;
TRUNCATE raw_snapshots;
COMMIT;
ANALYZE :"schema".snapshots;
\endif
