-- A promote, rollback or rolled-back promote is seen by other sessions exactly when it
-- commits: their cached model resolution is invalidated, never stale.
SET client_min_messages = warning;
CREATE SCHEMA ci;
CREATE TABLE ci.snapshots AS SELECT * FROM recsys.generate_santander(40, months => 4);
SELECT recsys.register_model('ci_model', recsys.untrained_model('ci.snapshots', window_months => 3, hidden => 4, seed => s))
  FROM generate_series(1, 2) s;
SELECT recsys.promote('ci_model', 1, force => true, reason => 'test fixture');
RESET client_min_messages;

-- A second session that keeps its backend (and its model cache) across statements.
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
                                      current_setting('unix_socket_directories'), current_setting('port')));
CREATE FUNCTION ci.other_session_version() RETURNS integer LANGUAGE sql AS $$
    SELECT CASE s WHEN recsys.score_customer(15889, 'ci_model', 1)::text THEN 1
                  WHEN recsys.score_customer(15889, 'ci_model', 2)::text THEN 2 END
      FROM dblink('other', $q$SELECT recsys.score_customer(15889, 'ci_model')::text$q$) AS t(s text)
$$;
SELECT ci.other_session_version() AS before_promote;

-- Uncommitted promote: the other session still scores with version 1.
BEGIN;
SELECT recsys.promote('ci_model', 2, force => true, reason => 'test fixture');
SELECT ci.other_session_version() AS during_uncommitted_promote;
COMMIT;
SELECT ci.other_session_version() AS after_commit;

-- A promote that rolls back changes nothing anywhere.
BEGIN;
SELECT recsys.rollback('ci_model');
ROLLBACK;
SELECT ci.other_session_version() AS after_rolled_back_rollback;

-- Rollback, committed.
SELECT recsys.rollback('ci_model');
SELECT ci.other_session_version() AS after_rollback;

-- Same backend, same transaction: a promote is seen by the next statement.
BEGIN;
SELECT recsys.promote('ci_model', 2, force => true, reason => 'test fixture');
SELECT recsys.score_customer(15889, 'ci_model') = recsys.score_customer(15889, 'ci_model', 2) AS sees_own_promote;
ROLLBACK;
SELECT recsys.score_customer(15889, 'ci_model') = recsys.score_customer(15889, 'ci_model', 1) AS back_to_v1;

SELECT dblink_disconnect('other');
