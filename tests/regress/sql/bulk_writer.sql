-- The one writer of recsys.recommendations and recsys.customer_states (src/pg/recommendation_writer.h):
-- store_states, advance_customer and refresh_recommendations write in batches of 1024 rows.
-- 2500 customers make three batches: the results still equal the full recompute, a failure in a
-- later batch rolls back the earlier ones, and triggers on the tables see every row.
SET client_min_messages = warning;
CREATE SCHEMA bw;
CREATE TABLE bw.snapshots AS
SELECT * FROM recsys.generate_santander(2500, months => 5) WHERE fecha_dato < '2015-05-01';
ALTER TABLE bw.snapshots ADD PRIMARY KEY (ncodpers, fecha_dato);
SELECT recsys.register_model('bw_model', recsys.untrained_model('bw.snapshots', window_months => 6, hidden => 8,
                             start_month => '2015-01-28'));
SELECT recsys.promote('bw_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;

-- A row trigger on each table counts what the writer hands it.
CREATE TABLE bw.seen (tab text, op text, n bigint, PRIMARY KEY (tab, op));
CREATE FUNCTION bw.count_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bw.seen VALUES (TG_TABLE_NAME, TG_OP, 1) ON CONFLICT (tab, op) DO UPDATE SET n = bw.seen.n + 1;
    RETURN NEW;
END $$;
CREATE TRIGGER count_row BEFORE INSERT OR UPDATE ON recsys.customer_states FOR EACH ROW EXECUTE FUNCTION bw.count_row();
CREATE TRIGGER count_row BEFORE INSERT OR UPDATE ON recsys.recommendations FOR EACH ROW EXECUTE FUNCTION bw.count_row();

-- First run: every state from scratch (inserts), in three batches.
SELECT recsys.advance_month('bw_model', '2015-04-28') AS written;
SELECT tab, op, n FROM bw.seen ORDER BY tab, op;
TRUNCATE bw.seen;

-- May lands: one step per customer, equal to the full recompute. Every row is offered as an insert
-- (BEFORE INSERT triggers see all 2482); the 2447 with a stored row are updated in place (the
-- conflict arm: BEFORE UPDATE triggers), the 35 customers new in May inserted.
INSERT INTO bw.snapshots SELECT * FROM recsys.generate_santander(2500, months => 5) WHERE fecha_dato = '2015-05-28';
SELECT recsys.advance_month('bw_model', '2015-05-28') AS written;
SELECT tab, op, n FROM bw.seen ORDER BY tab, op;
CREATE TEMP TABLE full_may AS SELECT * FROM recsys.full_states('bw_model', 7);
SELECT count(*) AS customers,
       bool_and(s.model_version = f.model_version AND s.state_month = f.state_month) AS same_versions_and_months,
       max((SELECT max(abs(a - b)) FROM unnest(s.state, f.state) u(a, b))) < 1e-5 AS same_states,
       bool_and(s.products = f.products) AS same_products,
       bool_and(r.products = f.top_products) AS same_recommendations,
       max((SELECT max(abs(a - b)) FROM unnest(r.scores, f.scores) u(a, b))) < 1e-5 AS same_scores
  FROM recsys.customer_states s JOIN full_may f USING (customer_id)
  JOIN recsys.recommendations r ON r.model_name = s.model_name AND r.customer_id = s.customer_id
 WHERE s.model_name = 'bw_model';

-- A failure in the third batch rolls back the first two: a trigger refuses the last customer.
CREATE FUNCTION bw.refuse_last() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id = 15889 + 2499 THEN RAISE EXCEPTION 'refused customer %', NEW.customer_id; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_last BEFORE INSERT OR UPDATE ON recsys.recommendations FOR EACH ROW EXECUTE FUNCTION bw.refuse_last();
CREATE TEMP TABLE before_rebuild AS SELECT customer_id, state FROM recsys.customer_states WHERE model_name = 'bw_model';
UPDATE recsys.customer_states SET state_month = '2015-04-28' WHERE model_name = 'bw_model' AND customer_id = 15889;
SELECT recsys.rebuild_states('bw_model');
SELECT count(*) AS states_as_before,
       (SELECT state_month FROM recsys.customer_states WHERE model_name = 'bw_model' AND customer_id = 15889) AS marked_month
  FROM recsys.customer_states s JOIN before_rebuild b USING (customer_id)
 WHERE s.model_name = 'bw_model' AND s.state = b.state;
DROP TRIGGER refuse_last ON recsys.recommendations;
DROP TRIGGER count_row ON recsys.customer_states;
DROP TRIGGER count_row ON recsys.recommendations;

-- refresh_recommendations writes through the same writer: every customer of score_all(), and a
-- customer gone from the source loses its row. Rows that exist are updated in place, not deleted
-- and inserted again: a row trigger counts what the refresh does to the table.
DELETE FROM bw.snapshots WHERE ncodpers = 15889 + 7;
TRUNCATE bw.seen;
CREATE FUNCTION bw.count_op() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bw.seen VALUES (TG_TABLE_NAME, TG_OP, 1) ON CONFLICT (tab, op) DO UPDATE SET n = bw.seen.n + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER count_op AFTER INSERT OR UPDATE OR DELETE ON recsys.recommendations FOR EACH ROW EXECUTE FUNCTION bw.count_op();
SELECT recsys.refresh_recommendations('bw_model') AS refreshed;
SELECT tab, op, n FROM bw.seen ORDER BY tab, op;
DROP TRIGGER count_op ON recsys.recommendations;
CREATE TEMP TABLE scored AS SELECT * FROM recsys.score_all('bw_model', 7);
SELECT (SELECT count(*) FROM recsys.recommendations WHERE model_name = 'bw_model') AS rows,
       (SELECT count(*) FROM scored) AS scored,
       count(*) AS equal_to_score_all
  FROM recsys.recommendations r JOIN scored s USING (customer_id)
 WHERE r.model_name = 'bw_model' AND r.products = s.products AND r.scores = s.scores AND r.model_version = s.model_version;
SELECT count(*) AS gone_customer_rows FROM recsys.recommendations WHERE model_name = 'bw_model' AND customer_id = 15889 + 7;
SELECT customers FROM recsys.prediction_sets WHERE model = 'bw_model';
-- The writer passes each batch as an array of the table's row type. A table altered under the
-- extension (a column of another type) is refused before anything is written, rather than
-- having its values misread; the rows stay as they were.
BEGIN;
ALTER TABLE recsys.recommendations ALTER COLUMN scores TYPE double precision[];
SELECT recsys.refresh_recommendations('bw_model');
ROLLBACK;
BEGIN;
ALTER TABLE recsys.customer_states DROP COLUMN products;
SELECT recsys.rebuild_states('bw_model');
ROLLBACK;
SELECT count(*) AS rows_kept FROM recsys.recommendations WHERE model_name = 'bw_model';
-- The writer is not for everyone: like refresh_recommendations, it is granted to recsys_admin.
SELECT has_function_privilege('public', 'recsys.store_recommendations(text, integer, date)', 'execute') AS public_may,
       has_function_privilege('recsys_admin', 'recsys.store_recommendations(text, integer, date)', 'execute') AS admin_may;
SELECT recsys.store_recommendations(NULL, 7, NULL) AS null_model;

DELETE FROM recsys.recommendations WHERE model_name = 'bw_model';
DELETE FROM recsys.customer_states WHERE model_name = 'bw_model';
SET client_min_messages = warning;
DROP SCHEMA bw CASCADE;
RESET client_min_messages;
