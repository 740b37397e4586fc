-- The tables of a model's life after training: data checks, gate rules and validation records,
-- continuous training runs, shadow deployments and model cards (docs/lifecycle.md).

---------------------------------------------------------------------------------------------
-- Who may override a check
---------------------------------------------------------------------------------------------
-- recsys_override: may promote a candidate without a passing validation record and train on
-- data that failed its checks (both with a recorded reason). Not granted to recsys_admin: a
-- bank gives it to the few people who sign off exceptions. Superusers hold it implicitly.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'recsys_override') THEN
        CREATE ROLE recsys_override NOLOGIN;
    END IF;
END
$roles$;

---------------------------------------------------------------------------------------------
-- Audit trail: why, and whether a check was overridden
---------------------------------------------------------------------------------------------
ALTER TABLE recsys.model_events
    ADD COLUMN reason        text,
    ADD COLUMN forced        boolean NOT NULL DEFAULT false,
    ADD COLUMN validation_id bigint;
COMMENT ON COLUMN recsys.model_events.reason IS 'Why the action was taken (required for a forced promotion)';
COMMENT ON COLUMN recsys.model_events.forced IS 'Promoted without a passing validation record, by a member of recsys_override';
COMMENT ON COLUMN recsys.model_events.validation_id IS 'The recsys.model_validations record that allowed the promotion';
-- Starting and stopping a shadow version (recsys.set_shadow) are recorded too; rollback()
-- walks back through 'promote' and 'rollback' events only.
ALTER TABLE recsys.model_events
    DROP CONSTRAINT model_events_action_check,
    ADD CONSTRAINT model_events_action_check
        CHECK (action IN ('register', 'promote', 'rollback', 'shadow_start', 'shadow_stop'));

---------------------------------------------------------------------------------------------
-- Data validation results
---------------------------------------------------------------------------------------------
CREATE TABLE recsys.data_validations (
    id              bigserial   PRIMARY KEY,
    relation        text        NOT NULL,
    month           date        NOT NULL,
    model_name      text,
    model_version   integer,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    checked_by      name        NOT NULL,
    passed          boolean     NOT NULL,
    -- [{"check", "column", "observed", "expected", "severity"}], severity ok / warn / fail.
    results         jsonb       NOT NULL,
    overridden_by   name,
    override_reason text
);
COMMENT ON TABLE recsys.data_validations IS 'Every recsys.validate_data() run: one month of a relation checked against a model''s feature spec or the month before';

---------------------------------------------------------------------------------------------
-- The promotion gate: rules per model, and validation records
---------------------------------------------------------------------------------------------
CREATE TABLE recsys.gate_rules (
    name                     text             PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$'),
    -- A candidate's MAP@7 must be at least this.
    min_map7                 double precision NOT NULL CHECK (min_map7 >= 0 AND min_map7 <= 1),
    -- Largest allowed drop of MAP@7 against production (NULL: no limit of that kind).
    max_drop_absolute        double precision CHECK (max_drop_absolute >= 0),
    max_drop_relative        double precision CHECK (max_drop_relative >= 0 AND max_drop_relative <= 1),
    -- false: the upper bound of the interval on (candidate - production) may not be below 0,
    -- i.e. a candidate that is clearly worse fails even within the allowed drop.
    allow_upper_below_zero   boolean          NOT NULL,
    -- A subpopulation whose interval is entirely below 0 fails the gate.
    subpopulations_must_pass boolean          NOT NULL,
    -- Subpopulations smaller than this are reported but never fail the gate.
    min_subpopulation_customers integer       NOT NULL CHECK (min_subpopulation_customers > 0),
    -- The level of the subpopulations' intervals: higher than the overall one, because some
    -- twenty subpopulations are judged at once (a Bonferroni-style correction).
    subpopulation_confidence double precision NOT NULL
                             CHECK (subpopulation_confidence > 0.5 AND subpopulation_confidence < 1),
    resamples                integer          NOT NULL CHECK (resamples BETWEEN 100 AND 100000),
    confidence               double precision NOT NULL CHECK (confidence > 0.5 AND confidence < 1),
    seed                     bigint           NOT NULL,
    updated_at               timestamptz      NOT NULL,
    updated_by               name             NOT NULL
);
COMMENT ON TABLE recsys.gate_rules IS 'Per-model decision rule of the promotion gate (recsys.validate), written by recsys.set_gate_rule; a model without a row uses the defaults of recsys.gate_rule()';

CREATE TABLE recsys.model_validations (
    id                 bigserial        PRIMARY KEY,
    name               text             NOT NULL,
    candidate_version  integer          NOT NULL,
    -- The production version when the record was made (NULL: there was none). A record only
    -- allows a promotion while this is still the production version.
    production_version integer,
    relation           text             NOT NULL,
    month              date             NOT NULL,
    customers          bigint           NOT NULL,
    adders             bigint           NOT NULL,
    -- SHA-256 of the frozen evaluation rows (customer ids, their snapshots and outcomes).
    fingerprint        text             NOT NULL,
    candidate_map7     double precision NOT NULL,
    production_map7    double precision,
    difference         double precision,
    ci_low             double precision,
    ci_high            double precision,
    rule               jsonb            NOT NULL,
    -- Full figures as computed by recsys.compare_versions (metrics, subpopulations, intervals).
    figures            jsonb            NOT NULL,
    passed             boolean          NOT NULL,
    reasons            text[]           NOT NULL,
    validated_at       timestamptz      NOT NULL DEFAULT now(),
    validated_by       name             NOT NULL,
    FOREIGN KEY (name, candidate_version) REFERENCES recsys.models (name, version) ON DELETE CASCADE
);
CREATE INDEX model_validations_candidate ON recsys.model_validations (name, candidate_version);
COMMENT ON TABLE recsys.model_validations IS 'Champion/challenger validation records: candidate and production evaluated on the same frozen, fingerprinted rows, with paired bootstrap intervals, subpopulations and the gate''s decision';

---------------------------------------------------------------------------------------------
-- Continuous training
---------------------------------------------------------------------------------------------
CREATE TABLE recsys.training_runs (
    id                 bigserial   PRIMARY KEY,
    name               text        NOT NULL,
    relation           text        NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at        timestamptz,
    started_by         name        NOT NULL,
    status             text        NOT NULL DEFAULT 'running'
                                   CHECK (status IN ('running', 'promoted', 'kept', 'failed')),
    data_validation_id bigint,
    candidate_version  integer,
    validation_id      bigint,
    production_before  integer,
    production_after   integer,
    -- [{"step", "started_at", "seconds", "outcome", "detail"}], in order.
    steps              jsonb       NOT NULL DEFAULT '[]',
    error              text,
    error_sqlstate     text
);
COMMENT ON TABLE recsys.training_runs IS 'Every recsys.retrain() cycle: data check, training, validation and decision, with timings and the reason of a failure';

---------------------------------------------------------------------------------------------
-- Shadow scoring
---------------------------------------------------------------------------------------------
CREATE TABLE recsys.shadow_deployments (
    name       text             PRIMARY KEY,
    version    integer          NOT NULL,
    sample     double precision NOT NULL CHECK (sample > 0 AND sample <= 1),
    started_at timestamptz      NOT NULL DEFAULT now(),
    started_by name             NOT NULL,
    FOREIGN KEY (name, version) REFERENCES recsys.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE recsys.shadow_deployments IS 'Versions scored beside production on a sampled share of recommend() calls (recsys.set_shadow)';

CREATE TABLE recsys.shadow_log (
    id                  bigserial   PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT now(),
    name                text        NOT NULL,
    customer_id         bigint      NOT NULL,
    -- The customer's latest snapshot month: both rankings predict the adds of the month after.
    month               date        NOT NULL,
    production_version  integer     NOT NULL,
    production_products text[]      NOT NULL,
    production_scores   real[]      NOT NULL,
    shadow_version      integer     NOT NULL,
    shadow_products     text[]      NOT NULL,
    shadow_scores       real[]      NOT NULL
);
CREATE INDEX shadow_log_name_at ON recsys.shadow_log (name, at);
COMMENT ON TABLE recsys.shadow_log IS 'Both rankings of each sampled recommend() call while a shadow version is set (never returned to the caller)';

---------------------------------------------------------------------------------------------
-- Model cards
---------------------------------------------------------------------------------------------
CREATE TABLE recsys.model_cards (
    name       text        NOT NULL,
    version    integer     NOT NULL,
    -- What the card was written for: 'register' or 'promote' (the latest of each is kept).
    occasion   text        NOT NULL CHECK (occasion IN ('register', 'promote')),
    written_at timestamptz NOT NULL DEFAULT now(),
    card       text        NOT NULL,
    PRIMARY KEY (name, version, occasion),
    FOREIGN KEY (name, version) REFERENCES recsys.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE recsys.model_cards IS 'Markdown model cards as written when a version was registered and when it was promoted';

-- The registry's history is user data: pg_dump keeps it.
SELECT pg_catalog.pg_extension_config_dump('recsys.data_validations', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.data_validations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.gate_rules', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.model_validations', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.model_validations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.training_runs', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.training_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.shadow_deployments', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.shadow_log', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.shadow_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('recsys.model_cards', '');

-- Nothing to PUBLIC. Readers see the lifecycle's records (no per-customer data); the shadow
-- log holds per-customer rankings and is the admins'. All writes go through the functions.
REVOKE ALL ON recsys.data_validations, recsys.gate_rules, recsys.model_validations, recsys.training_runs,
              recsys.shadow_deployments, recsys.shadow_log, recsys.model_cards FROM PUBLIC;
REVOKE ALL ON SEQUENCE recsys.data_validations_id_seq, recsys.model_validations_id_seq,
              recsys.training_runs_id_seq, recsys.shadow_log_id_seq FROM PUBLIC;
GRANT SELECT ON recsys.gate_rules, recsys.model_validations, recsys.training_runs, recsys.shadow_deployments,
                recsys.model_cards TO recsys_reader;
GRANT SELECT ON recsys.data_validations TO recsys_admin;
-- Admins prune the shadow log (it has no retention of its own).
GRANT SELECT, DELETE ON recsys.shadow_log TO recsys_admin;
