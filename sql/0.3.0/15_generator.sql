-- recsys.generate_santander() gains an optional planted change (docs/generated-data.md,
-- "Planted changes"): from one month on, for one segment or every customer, two product flags
-- swapped, one product's uptake multiplied, or one numeric column scaled. Without it (NULL, the
-- default) the output is bit-identical to 0.2.0's.
DROP FUNCTION recsys.generate_santander(bigint, integer, bigint, bigint, date);

CREATE FUNCTION recsys.generate_santander(
    customers      bigint,
    months         integer DEFAULT 17,
    seed           bigint  DEFAULT 42,
    first_customer bigint  DEFAULT 0,
    first_month    date    DEFAULT '2015-01-28',
    planted        jsonb   DEFAULT NULL)
RETURNS TABLE (
    fecha_dato date, ncodpers bigint, ind_empleado text, pais_residencia text, sexo text, age integer,
    fecha_alta date, ind_nuevo integer, antiguedad integer, indrel integer, tiprel_1mes text, indresi text,
    indext text, canal_entrada text, cod_prov integer, ind_actividad_cliente integer,
    renta double precision, segmento text,
    ind_ahor_fin_ult1 smallint, ind_aval_fin_ult1 smallint, ind_cco_fin_ult1 smallint,
    ind_cder_fin_ult1 smallint, ind_cno_fin_ult1 smallint, ind_ctju_fin_ult1 smallint,
    ind_ctma_fin_ult1 smallint, ind_ctop_fin_ult1 smallint, ind_ctpp_fin_ult1 smallint,
    ind_deco_fin_ult1 smallint, ind_deme_fin_ult1 smallint, ind_dela_fin_ult1 smallint,
    ind_ecue_fin_ult1 smallint, ind_fond_fin_ult1 smallint, ind_hip_fin_ult1 smallint,
    ind_plan_fin_ult1 smallint, ind_pres_fin_ult1 smallint, ind_reca_fin_ult1 smallint,
    ind_tjcr_fin_ult1 smallint, ind_valo_fin_ult1 smallint, ind_viv_fin_ult1 smallint,
    ind_nomina_ult1 smallint, ind_nom_pens_ult1 smallint, ind_recibo_ult1 smallint)
AS 'MODULE_PATHNAME', 'recsys_generate_santander' LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION recsys.generate_santander(bigint, integer, bigint, bigint, date, jsonb) IS 'Deterministic synthetic Santander snapshots with planted signal (docs/generated-data.md); customers first_customer .. first_customer + customers - 1; planted (optional): a change from one month on, e.g. {"from_month": "2015-06-28", "segment": "03 - UNIVERSITARIO", "swap_products": ["ind_recibo_ult1", "ind_tjcr_fin_ult1"], "uptake": {"product": "ind_cno_fin_ult1", "factor": 2}, "shift": {"column": "renta", "factor": 1.5}}';

GRANT EXECUTE ON FUNCTION
    recsys.generate_santander(bigint, integer, bigint, bigint, date, jsonb)
TO recsys_reader;
