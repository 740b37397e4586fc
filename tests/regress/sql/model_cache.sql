-- The per-backend model cache: visible with its bytes in pg_backend_memory_contexts, bounded
-- by recsys.model_cache_memory, and rid of models whose registry row went away.
SET max_parallel_workers_per_gather = 0;  -- every call in this backend, where the cache is
SET client_min_messages = warning;
CREATE SCHEMA mc;
CREATE TABLE mc.snapshots AS SELECT * FROM recsys.generate_santander(30, months => 3);
-- Three models of about 1.3 MB each (hidden 256).
SELECT recsys.register_model('mc_' || i, recsys.untrained_model('mc.snapshots', window_months => 2, hidden => 256, seed => i))
  FROM generate_series(1, 3) i;
RESET client_min_messages;
CREATE VIEW mc.cache AS
SELECT total_nblocks AS models, total_bytes > 0 AND total_bytes = used_bytes AS counted,
       round(total_bytes / 1048576.0) AS mib
  FROM pg_backend_memory_contexts WHERE name = 'recsys model cache';

SELECT count(recsys.score_customer(15889, 'mc_' || i, 1)) AS scored FROM generate_series(1, 3) i;
SELECT * FROM mc.cache;
-- A budget below one model: only the model in use stays.
SET recsys.model_cache_memory = '1MB';
SELECT cardinality(recsys.score_customer(15889, 'mc_1', 1)) AS scored;
SELECT * FROM mc.cache;
RESET recsys.model_cache_memory;
SELECT count(recsys.score_customer(15889, 'mc_' || i, 1)) AS scored FROM generate_series(1, 3) i;
SELECT * FROM mc.cache;
-- A version deleted from the registry is freed at the next use of the cache, not at an eviction.
DELETE FROM recsys.models WHERE name = 'mc_3';
SELECT cardinality(recsys.score_customer(15889, 'mc_1', 1)) AS scored;
SELECT * FROM mc.cache;
SELECT recsys.score_customer(15889, 'mc_3', 1);

SET client_min_messages = warning;
DROP SCHEMA mc CASCADE;
DELETE FROM recsys.model_events WHERE name LIKE 'mc\_%';
DELETE FROM recsys.models WHERE name LIKE 'mc\_%';
RESET client_min_messages;
