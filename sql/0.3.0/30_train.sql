---------------------------------------------------------------------------------------------
-- recsys.train: any id and month column, and a data check before training
---------------------------------------------------------------------------------------------
-- 0.2.0's train() read ncodpers and fecha_dato and trained on whatever the relation held. It now
-- takes the id and month columns, and first runs recsys.require_valid_data() on the validation
-- month (the newest month it reads): a failing check stops it unless a member of
-- recsys_override gives data_override_reason. The id of the stored check and the reason are
-- recorded in the model's training_data. The first 15 arguments are unchanged, so positional
-- calls keep working.
DROP FUNCTION recsys.train(text, text, integer, date, integer, integer, integer, integer, integer, real, real, integer,
                           bigint, integer, date);
CREATE FUNCTION recsys.train(
    model_name           text,
    source               text    DEFAULT 'santander.snapshots',
    train_months         integer DEFAULT 12,
    validation_month     date    DEFAULT NULL,
    window_months        integer DEFAULT 16,
    hidden               integer DEFAULT 128,
    layers               integer DEFAULT 1,
    epochs               integer DEFAULT 5,
    batch_size           integer DEFAULT 256,
    learning_rate        real    DEFAULT 0.003,
    clip_norm            real    DEFAULT 5,
    patience             integer DEFAULT 2,
    seed                 bigint  DEFAULT 1,
    max_customers        integer DEFAULT NULL,
    start_month          date    DEFAULT NULL,
    id_column            text    DEFAULT 'ncodpers',
    month_column         text    DEFAULT 'fecha_dato',
    data_override_reason text    DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'recsys_train' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION recsys.train(text, text, integer, date, integer, integer, integer, integer, integer, real, real,
                                 integer, bigint, integer, date, text, text, text) IS 'Checks the validation month with recsys.require_valid_data (data_override_reason: train anyway, members of recsys_override only), then trains the default Santander LSTM on the train_months target months before validation_month (streamed, mini-batch Adam, early stopping on validation MAP@7) and registers the best weights as a new candidate version; returns the version. The source has one row per customer (id_column) and month (month_column). With start_month, the model reads every month since then (window_months at most) and can be scored incrementally';
-- SECURITY INVOKER: it reads the source with the caller's privileges and registers through
-- recsys.register_model, whose EXECUTE privilege the caller also needs.
GRANT EXECUTE ON FUNCTION recsys.train(text, text, integer, date, integer, integer, integer, integer, integer, real, real,
                                       integer, bigint, integer, date, text, text, text) TO recsys_admin;
