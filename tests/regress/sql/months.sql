-- Snapshot months are whole calendar months [first day, first day of the next month): a
-- snapshot dated the 1st, the 28th or the last day (30th, 31st, February's 28th) belongs to its
-- own month everywhere, and a timestamptz month column is read in UTC whatever the session's
-- TimeZone.
SET client_min_messages = warning;
CREATE SCHEMA mon;
-- Generated data re-dated: customers by id mod 3 on the 1st, the 28th or the month's last day.
CREATE TABLE mon.all_months AS
SELECT (CASE ncodpers % 3 WHEN 0 THEN date_trunc('month', fecha_dato)::date
                          WHEN 1 THEN fecha_dato
                          ELSE (date_trunc('month', fecha_dato) + interval '1 month - 1 day')::date END) AS day,
       g.*
  FROM recsys.generate_santander(300, months => 7) g;
ALTER TABLE mon.all_months DROP COLUMN fecha_dato;
ALTER TABLE mon.all_months RENAME COLUMN day TO fecha_dato;
SELECT count(DISTINCT extract(day FROM fecha_dato)) AS distinct_days FROM mon.all_months;
CREATE TABLE mon.snapshots AS SELECT * FROM mon.all_months WHERE fecha_dato < '2015-06-01';
CREATE INDEX ON mon.snapshots (ncodpers, fecha_dato);
SELECT recsys.register_model('mon_model', recsys.untrained_model('mon.snapshots', window_months => 12, hidden => 8,
                             start_month => '2015-01-01'));
SELECT recsys.promote('mon_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;

-- States through May, then June and July land together (a late load): each month is
-- advanced with its own rows only, and the result equals a full recompute.
SELECT recsys.rebuild_states('mon_model') AS states_through_may;
INSERT INTO mon.snapshots SELECT * FROM mon.all_months WHERE fecha_dato >= '2015-06-01';
SELECT recsys.advance_month('mon_model', '2015-06-30') AS june,
       (SELECT count(*) FROM mon.snapshots WHERE fecha_dato >= '2015-06-01' AND fecha_dato < '2015-07-01') AS june_rows;
SELECT recsys.advance_month('mon_model', '2015-07-01') AS july,
       (SELECT count(*) FROM mon.snapshots WHERE fecha_dato >= '2015-07-01') AS july_rows;
CREATE TEMP TABLE full_july AS SELECT * FROM recsys.full_states('mon_model', 7);
SELECT count(*) AS customers,
       bool_and(s.state_month = f.state_month) AS same_months,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(s.products = f.products) AS same_products
  FROM recsys.customer_states s JOIN full_july f USING (customer_id) WHERE s.model_name = 'mon_model';

-- February: advancing it must not take March 1st's rows.
SET client_min_messages = warning;
CREATE TABLE mon.feb AS SELECT * FROM mon.all_months WHERE fecha_dato < '2015-02-01';
SELECT recsys.register_model('mon_feb', recsys.untrained_model('mon.feb', window_months => 12, hidden => 8,
                             start_month => '2015-01-01'));
SELECT recsys.promote('mon_feb', 1, force => true, reason => 'test fixture');
RESET client_min_messages;
SELECT recsys.rebuild_states('mon_feb') AS january;
INSERT INTO mon.feb SELECT * FROM mon.all_months WHERE fecha_dato >= '2015-02-01' AND fecha_dato < '2015-04-01';
SELECT recsys.advance_month('mon_feb', '2015-02-28') AS february,
       (SELECT count(*) FROM mon.feb WHERE fecha_dato >= '2015-02-01' AND fecha_dato < '2015-03-01') AS february_rows;
-- The advanced states equal a full recompute over January and February alone.
DELETE FROM mon.feb WHERE fecha_dato >= '2015-03-01';
SELECT count(*) AS customers, max(s.state_month) AS latest_state,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(s.products = f.products) AS same_products
  FROM recsys.customer_states s JOIN recsys.full_states('mon_feb', 7) f USING (customer_id)
 WHERE s.model_name = 'mon_feb';

-- A timestamptz month column: the same month and scores in any session TimeZone.
CREATE VIEW mon.tz_snapshots AS
SELECT (fecha_dato::timestamp AT TIME ZONE 'UTC') AS fecha_dato, ncodpers, ind_empleado, pais_residencia, sexo, age,
       fecha_alta, ind_nuevo, antiguedad, indrel, tiprel_1mes, indresi, indext, canal_entrada, cod_prov,
       ind_actividad_cliente, renta, segmento, ind_ahor_fin_ult1, ind_aval_fin_ult1, ind_cco_fin_ult1,
       ind_cder_fin_ult1, ind_cno_fin_ult1, ind_ctju_fin_ult1, ind_ctma_fin_ult1, ind_ctop_fin_ult1,
       ind_ctpp_fin_ult1, ind_deco_fin_ult1, ind_deme_fin_ult1, ind_dela_fin_ult1, ind_ecue_fin_ult1,
       ind_fond_fin_ult1, ind_hip_fin_ult1, ind_plan_fin_ult1, ind_pres_fin_ult1, ind_reca_fin_ult1,
       ind_tjcr_fin_ult1, ind_valo_fin_ult1, ind_viv_fin_ult1, ind_nomina_ult1, ind_nom_pens_ult1, ind_recibo_ult1
  FROM mon.all_months;
SET client_min_messages = warning;
SELECT recsys.register_model('mon_tz', recsys.untrained_model('mon.tz_snapshots', window_months => 4, hidden => 8));
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TEMP TABLE tz_utc AS SELECT * FROM recsys.score_all('mon_tz', 7, version => 1, as_of => '2015-05-31');
SET TimeZone = 'America/New_York';
CREATE TEMP TABLE tz_ny AS SELECT * FROM recsys.score_all('mon_tz', 7, version => 1, as_of => '2015-05-31');
SET TimeZone = 'Asia/Tokyo';
CREATE TEMP TABLE tz_tokyo AS SELECT * FROM recsys.score_all('mon_tz', 7, version => 1, as_of => '2015-05-31');
RESET TimeZone;
SELECT count(*) AS customers,
       bool_and(u.products = n.products AND u.scores = n.scores) AS new_york_same,
       bool_and(u.products = t.products AND u.scores = t.scores) AS tokyo_same
  FROM tz_utc u JOIN tz_ny n USING (customer_id) JOIN tz_tokyo t USING (customer_id);
-- ... and the same as a model fitted the same way over the date-typed table (same statistics,
-- same seed), so each timestamptz snapshot was read in its own month.
SET client_min_messages = warning;
SELECT recsys.register_model('mon_date', recsys.untrained_model('mon.all_months', window_months => 4, hidden => 8));
RESET client_min_messages;
SELECT count(*) AS customers, bool_and(u.products = d.products AND u.scores = d.scores) AS same_as_date_months
  FROM tz_utc u JOIN recsys.score_all('mon_date', 7, version => 1, as_of => '2015-05-31') d USING (customer_id);
