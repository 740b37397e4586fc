---------------------------------------------------------------------------------------------
-- recsys.compare_versions: the evaluation engine of the promotion gate
---------------------------------------------------------------------------------------------
-- Evaluates a candidate and a baseline version on the same month with the same code and
-- compares them customer by customer: MAP@7 of each, a paired bootstrap interval on the
-- difference of their MAP@7 (candidate - baseline), overall and per subpopulation (segment,
-- age band, income band, tenure, channel, add history; the candidate's features decide which),
-- and a SHA-256 fingerprint of the evaluated rows. Deterministic for a given seed. Result:
--   {"relation", "month" (YYYY-MM-DD), "customers", "adders", "fingerprint" (hex), "resamples",
--    "confidence", "subpopulation_confidence", "seed",
--    "candidate": {"version", "map7", "map7_adders", "precision7", "recall7", "coverage"},
--    "baseline": {... the same ...} or null,
--    "difference": {"mean", "low", "high"} or null,
--    "subpopulations": [{"dimension", "value", "customers", "adders", "candidate_map7",
--                        "baseline_map7", "difference", "low", "high"}]}
-- baseline NULL: the candidate alone (baseline, difference and the subpopulations' baseline
-- and difference fields null). month NULL: the relation's latest month. The subpopulations'
-- intervals are at subpopulation_confidence (NULL: confidence).
CREATE FUNCTION recsys.compare_versions(model_name text, candidate integer, baseline integer, month date,
                                        resamples integer DEFAULT 1000,
                                        confidence double precision DEFAULT 0.95,
                                        seed bigint DEFAULT 42,
                                        subpopulation_confidence double precision DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'recsys_compare_versions' LANGUAGE C STABLE;
COMMENT ON FUNCTION recsys.compare_versions(text, integer, integer, date, integer, double precision, bigint, double precision) IS 'Evaluates two versions of a model (baseline NULL: the candidate alone) on the same customers of one month (NULL: the latest) and compares them: MAP@7 of each, paired bootstrap interval on the difference overall and per subpopulation, fingerprint of the evaluated rows; changes nothing';
GRANT EXECUTE ON FUNCTION recsys.compare_versions(text, integer, integer, date, integer, double precision, bigint, double precision)
    TO recsys_admin;
