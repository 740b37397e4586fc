-- Online scoring from stored states: recommend(), recommend_scores() and score_customer() of a
-- from-start model continue the customer's stored state (recsys.customer_states) when it is
-- usable and run the full history otherwise; both give the same scores (within 1e-5), and
-- recsys.serving_stats counts each path. A from-start model keeps scoring customers with more
-- months than its window.
SET client_min_messages = warning;
CREATE SCHEMA onl;
CREATE TABLE onl.all_months AS SELECT * FROM recsys.generate_santander(120, months => 9);
CREATE TABLE onl.snapshots AS SELECT * FROM onl.all_months WHERE fecha_dato < '2015-05-01';
ALTER TABLE onl.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
-- Window 6 from January: July and later are past the window. Versions 1 and 2 differ in
-- weights; onl_long has version 1's weights (same seed) and a window of 12.
SELECT recsys.register_model('onl_model', recsys.untrained_model('onl.snapshots', window_months => 6, hidden => 8,
                             seed => s, start_month => '2015-01-28'))
  FROM generate_series(1, 2) s;
SELECT recsys.promote('onl_model', 1, force => true, reason => 'test fixture');
SELECT recsys.register_model('onl_long', recsys.untrained_model('onl.snapshots', window_months => 12, hidden => 8,
                             seed => 1, start_month => '2015-01-28'));
SELECT recsys.promote('onl_long', 1, force => true, reason => 'test fixture');
-- A scoring role that may not read recsys.customer_states: its calls run the full history.
CREATE ROLE onl_scorer;
GRANT recsys_reader TO onl_scorer;
GRANT USAGE ON SCHEMA onl TO onl_scorer;
GRANT SELECT ON onl.snapshots TO onl_scorer;
SELECT recsys.advance_month('onl_model', '2015-04-28') > 0 AS states_stored;
RESET client_min_messages;

-- Scores of every customer as this session (may read the states) and as onl_scorer (may not).
CREATE TEMP TABLE customers AS SELECT DISTINCT ncodpers AS id FROM onl.snapshots;
GRANT SELECT ON customers TO onl_scorer;
CREATE FUNCTION pg_temp.compare(label text) RETURNS TABLE (state_path text, customers bigint, within_1e5 boolean,
                                                              same_rankings boolean, stored bigint, full_history bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recsys.serving_stats_reset();
    CREATE TEMP TABLE with_state AS
        SELECT c.id, recsys.score_customer(c.id, 'onl_model') AS s, recsys.recommend(c.id, 7, 'onl_model') AS r
          FROM customers c;
    SET ROLE onl_scorer;
    CREATE TEMP TABLE without_state AS
        SELECT c.id, recsys.score_customer(c.id, 'onl_model') AS s, recsys.recommend(c.id, 7, 'onl_model') AS r
          FROM customers c;
    RESET ROLE;
    RETURN QUERY
    SELECT label, count(*),
           max((SELECT max(abs(x - y)) FROM unnest(a.s, b.s) u(x, y))) < 1e-5,
           bool_and(a.r = b.r),
           (SELECT sum(t.from_stored_state)::bigint FROM recsys.serving_stats t WHERE t.model = 'onl_model'),
           (SELECT sum(t.from_full_history)::bigint FROM recsys.serving_stats t WHERE t.model = 'onl_model')
      FROM with_state a JOIN without_state b USING (id);
    DROP TABLE with_state, without_state;
END $$;

-- Every state covers the customer's latest snapshot: the head alone (2 calls a customer;
-- customers without an April snapshot have a state from their last month too).
SELECT * FROM pg_temp.compare('current');
-- May loaded, not advanced: one month behind.
INSERT INTO onl.snapshots SELECT * FROM onl.all_months WHERE fecha_dato = '2015-05-28';
SELECT * FROM pg_temp.compare('one month behind');
-- June to September: a few months behind, and past the model's window of 6 months.
INSERT INTO onl.snapshots SELECT * FROM onl.all_months WHERE fecha_dato > '2015-05-28';
SELECT * FROM pg_temp.compare('five months behind, past the window');

-- Past the window, against an independent computation: the same weights in a model whose
-- window holds all nine months (onl_long scores through the window's encoder and forward pass).
SELECT count(*) AS customers,
       max((SELECT max(abs(x - y)) FROM unnest(recsys.score_customer(c.id, 'onl_model'),
                                              recsys.score_customer(c.id, 'onl_long')) u(x, y))) < 1e-5 AS same_as_long_window,
       bool_and(recsys.recommend(c.id, 7, 'onl_model') = recsys.recommend(c.id, 7, 'onl_long')) AS same_rankings
  FROM customers c;

-- Unusable states fall back to the full history: a state from another version, no state, a
-- state whose month's snapshot was rewritten, a state after the latest snapshot.
UPDATE recsys.customer_states SET model_version = 2 WHERE model_name = 'onl_model' AND customer_id % 4 = 0;
DELETE FROM recsys.customer_states WHERE model_name = 'onl_model' AND customer_id % 4 = 1;
UPDATE onl.snapshots s SET ind_ahor_fin_ult1 = 1 - ind_ahor_fin_ult1
  FROM recsys.customer_states c
 WHERE c.model_name = 'onl_model' AND c.customer_id = s.ncodpers AND s.fecha_dato = c.state_month
   AND s.ncodpers % 4 = 2 AND s.ncodpers % 8 = 2;
SELECT count(*) FILTER (WHERE customer_id % 4 = 0) AS other_version, count(*) FILTER (WHERE customer_id % 4 = 1) AS no_state
  FROM recsys.customer_states WHERE model_name = 'onl_model';
SELECT * FROM pg_temp.compare('mixed');
-- Expected: stored = twice the customers whose state is usable.
SELECT 2 * count(*) AS expected_stored
  FROM recsys.customer_states c JOIN onl.snapshots s ON s.ncodpers = c.customer_id AND s.fecha_dato = c.state_month
 WHERE c.model_name = 'onl_model' AND c.model_version = 1
   AND c.products = ARRAY[s.ind_ahor_fin_ult1, s.ind_aval_fin_ult1, s.ind_cco_fin_ult1, s.ind_cder_fin_ult1,
                          s.ind_cno_fin_ult1, s.ind_ctju_fin_ult1, s.ind_ctma_fin_ult1, s.ind_ctop_fin_ult1,
                          s.ind_ctpp_fin_ult1, s.ind_deco_fin_ult1, s.ind_deme_fin_ult1, s.ind_dela_fin_ult1,
                          s.ind_ecue_fin_ult1, s.ind_fond_fin_ult1, s.ind_hip_fin_ult1, s.ind_plan_fin_ult1,
                          s.ind_pres_fin_ult1, s.ind_reca_fin_ult1, s.ind_tjcr_fin_ult1, s.ind_valo_fin_ult1,
                          s.ind_viv_fin_ult1, s.ind_nomina_ult1, s.ind_nom_pens_ult1, s.ind_recibo_ult1]::smallint[];
-- A state after the customer's latest snapshot (its later months deleted) is not used either.
SELECT min(ncodpers) AS lone FROM onl.snapshots WHERE ncodpers % 4 = 3 AND fecha_dato = '2015-02-28' \gset
SELECT state_month AS lone_state_month FROM recsys.customer_states WHERE model_name = 'onl_model' AND customer_id = :lone;
DELETE FROM onl.snapshots WHERE ncodpers = :lone AND fecha_dato > '2015-02-28';
SELECT recsys.serving_stats_reset();
SELECT recsys.recommend(:lone, 7, 'onl_model') = recsys.recommend(:lone, 7, 'onl_long') AS same_as_long_window,
       (SELECT from_full_history FROM recsys.serving_stats WHERE model = 'onl_model' AND entry_point = 'recommend') AS full_history;

-- recommend_scores() takes the same path and ranks the same products.
SELECT recsys.serving_stats_reset();
SELECT bool_and((SELECT array_agg(r.product ORDER BY r.rank) FROM recsys.recommend_scores(c.id, 7, 'onl_model') r)
                = recsys.recommend(c.id, 7, 'onl_model')) AS same_products
  FROM (SELECT id FROM customers WHERE id % 4 = 3 ORDER BY id LIMIT 5) c;
SELECT entry_point, customers, from_stored_state, from_full_history
  FROM recsys.serving_stats WHERE model = 'onl_model' ORDER BY entry_point;

SET client_min_messages = warning;
DROP OWNED BY onl_scorer;
DROP ROLE onl_scorer;
