-- Each month advance_month() rewrites every stored state (about 1.2 KiB a row) and every
-- recommendation of the customers of that month. At fillfactor 50 the new version of a row
-- fits on its own page, so the update is HOT: no new primary-key entry and no new page, and
-- the previous month's version is pruned from the page by the next update. bench/advance_month_cost.sh
-- measured it (docs/benchmarks.md, "A new month"): every update HOT and about a seventh less CPU
-- for advance_month than at fillfactor 100, for twice the space. The setting applies to pages
-- written from now on: after updating from 0.3.0, VACUUM FULL on both tables (or the next
-- rebuild_states() and refresh_recommendations() followed by VACUUM) spreads the existing rows.
ALTER TABLE recsys.customer_states SET (fillfactor = 50);
ALTER TABLE recsys.recommendations SET (fillfactor = 50);
