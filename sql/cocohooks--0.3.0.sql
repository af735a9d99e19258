-- cocohooks 0.3.0: collection hooks for PostgreSQL tables.
\echo Use "CREATE EXTENSION cocohooks" to load this file. \quit

-- Refuse early, with a clear error, a server without the preloaded library
-- or a database the worker does not serve.
CREATE FUNCTION cocohooks._check_install() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_check_install';
SELECT cocohooks._check_install();
REVOKE ALL ON FUNCTION cocohooks._check_install() FROM PUBLIC;

-- The hook catalog.  Written only by the functions below, which check that
-- the caller owns the collection; read through row-level security.
CREATE SEQUENCE cocohooks.hooks_id_seq;

CREATE TABLE cocohooks.hooks (
    id          bigint      NOT NULL DEFAULT pg_catalog.nextval('cocohooks.hooks_id_seq') PRIMARY KEY,
    collection  regclass    NOT NULL,
    event       text        NOT NULL
        CHECK (event IN ('pre_save', 'post_save', 'pre_delete', 'post_delete')),
    url         text        NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    secret      text,
    enabled     boolean     NOT NULL DEFAULT true,
    timeout_ms  integer     NOT NULL DEFAULT 15000 CHECK (timeout_ms BETWEEN 1 AND 15000),
    -- NULL: no limit on the count (retry_for still bounds the time)
    max_retries integer     CHECK (max_retries BETWEEN 0 AND 20),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- why and when the worker disabled the hook (a 410 Gone); NULL otherwise
    disabled_reason text,
    -- during a rotation (rotate_secret), the secret that still signs too
    previous_secret text,
    previous_secret_until timestamptz,
    -- update events fire only when one of these columns changed (NULL: any)
    columns     text[],
    -- left out of document and old_data
    exclude_columns text[],
    ordering    text        NOT NULL DEFAULT 'document'
        CHECK (ordering IN ('document', 'none')),
    -- retries stop this long after the event's commit (NULL: no time limit)
    retry_for   interval    DEFAULT '1 day' CHECK (retry_for > '0'),
    -- what events name: bumped by every change of url, headers, timeout_ms,
    -- max_retries, ordering, retry_for, batch_size or batch_wait
    -- (cocohooks.hook_versions)
    settings_version integer NOT NULL DEFAULT 1,
    -- fires only on rows for which this is true (NULL: every row), as
    -- normalized text; filter_tree is its compiled form, which the row
    -- trigger evaluates (written by the compile_hook_filter trigger)
    filter      text,
    filter_tree text,
    -- the hook's pace: requests started per second, requests in flight
    -- (NULL: no limit of its own)
    max_per_second real    CHECK (max_per_second > 0),
    max_concurrent integer CHECK (max_concurrent >= 1),
    -- batched delivery: up to batch_size events in one request, gathered
    -- for at most batch_wait (1: each event alone)
    batch_size  integer     NOT NULL DEFAULT 1 CHECK (batch_size BETWEEN 1 AND 1000),
    batch_wait  interval    NOT NULL DEFAULT '5 milliseconds'
        CHECK (batch_wait >= '0' AND batch_wait <= '10 seconds')
);
ALTER SEQUENCE cocohooks.hooks_id_seq OWNED BY cocohooks.hooks.id;
CREATE INDEX hooks_collection_idx ON cocohooks.hooks (collection);

-- Hooks are user data: keep them in pg_dump output.
SELECT pg_catalog.pg_extension_config_dump('cocohooks.hooks', '');
SELECT pg_catalog.pg_extension_config_dump('cocohooks.hooks_id_seq', '');

ALTER TABLE cocohooks.hooks ENABLE ROW LEVEL SECURITY;
CREATE POLICY hooks_of_owned_tables ON cocohooks.hooks FOR SELECT
    USING (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = collection),
        'USAGE'));

-- Every change to the catalog, however it is made, refreshes the hook
-- caches of all backends.
CREATE FUNCTION cocohooks.hooks_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_hooks_changed';
REVOKE ALL ON FUNCTION cocohooks.hooks_changed() FROM PUBLIC;
CREATE TRIGGER hooks_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cocohooks.hooks
    FOR EACH STATEMENT EXECUTE FUNCTION cocohooks.hooks_changed();

-- A hook's filter is compiled from its text into filter_tree on every
-- insert (a restore's too: column numbers and oids change) and on every
-- change of the text (alter_hook, a column rename).
CREATE FUNCTION cocohooks.compile_hook_filter() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_compile_hook_filter';
REVOKE ALL ON FUNCTION cocohooks.compile_hook_filter() FROM PUBLIC;
CREATE TRIGGER compile_hook_filter
    BEFORE INSERT OR UPDATE OF filter, collection, event ON cocohooks.hooks
    FOR EACH ROW EXECUTE FUNCTION cocohooks.compile_hook_filter();

-- A hook's settings as they were before a change, or before the hook was
-- unregistered.  Events name their hooks' settings versions, not the
-- settings (nor the secrets), so the events written before the change are
-- delivered as they were written: the worker reads a version here until
-- no event can still name it, then deletes the row.  Holds the secrets of
-- unregistered hooks (their last events are signed with them): nobody but
-- the extension's owner reads it.  The worker's state, not user data: not
-- dumped.
CREATE TABLE cocohooks.hook_versions (
    hook_id          bigint      NOT NULL,
    settings_version integer     NOT NULL,
    url              text        NOT NULL,
    headers          jsonb       NOT NULL,
    timeout_ms       integer     NOT NULL,
    max_retries      integer,
    ordering         text        NOT NULL,
    retry_for        interval,
    -- the hook was unregistered: these are its last settings
    unregistered     boolean     NOT NULL,
    -- an unregistered hook's secrets, which still sign its last events
    secret           text,
    previous_secret  text,
    previous_secret_until timestamptz,
    retired_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- the version's batching (cocohooks.hooks.batch_size, batch_wait)
    batch_size       integer     NOT NULL DEFAULT 1,
    batch_wait       interval    NOT NULL DEFAULT '5 milliseconds',
    PRIMARY KEY (hook_id, settings_version)
);
ALTER TABLE cocohooks.hook_versions ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION cocohooks.keep_hook_settings() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.url IS NOT DISTINCT FROM OLD.url
           AND NEW.headers IS NOT DISTINCT FROM OLD.headers
           AND NEW.timeout_ms IS NOT DISTINCT FROM OLD.timeout_ms
           AND NEW.max_retries IS NOT DISTINCT FROM OLD.max_retries
           AND NEW.ordering IS NOT DISTINCT FROM OLD.ordering
           AND NEW.retry_for IS NOT DISTINCT FROM OLD.retry_for
           AND NEW.batch_size IS NOT DISTINCT FROM OLD.batch_size
           AND NEW.batch_wait IS NOT DISTINCT FROM OLD.batch_wait
           AND NEW.settings_version = OLD.settings_version THEN
            RETURN NEW;
        END IF;
        NEW.settings_version := OLD.settings_version + 1;
    END IF;
    INSERT INTO cocohooks.hook_versions
        (hook_id, settings_version, url, headers, timeout_ms, max_retries,
         ordering, retry_for, unregistered, secret, previous_secret,
         previous_secret_until, batch_size, batch_wait)
    VALUES (OLD.id, OLD.settings_version, OLD.url, OLD.headers, OLD.timeout_ms,
            OLD.max_retries, OLD.ordering, OLD.retry_for, TG_OP = 'DELETE',
            CASE WHEN TG_OP = 'DELETE' THEN OLD.secret END,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.previous_secret END,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.previous_secret_until END,
            OLD.batch_size, OLD.batch_wait)
    ON CONFLICT (hook_id, settings_version) DO NOTHING;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION cocohooks.keep_hook_settings() FROM PUBLIC;
CREATE TRIGGER keep_hook_settings
    BEFORE UPDATE OR DELETE ON cocohooks.hooks
    FOR EACH ROW EXECUTE FUNCTION cocohooks.keep_hook_settings();

CREATE FUNCTION cocohooks.keep_truncated_hook_settings() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO cocohooks.hook_versions
        (hook_id, settings_version, url, headers, timeout_ms, max_retries,
         ordering, retry_for, unregistered, secret, previous_secret,
         previous_secret_until, batch_size, batch_wait)
    SELECT id, settings_version, url, headers, timeout_ms, max_retries,
           ordering, retry_for, true, secret, previous_secret,
           previous_secret_until, batch_size, batch_wait
      FROM cocohooks.hooks
    ON CONFLICT (hook_id, settings_version) DO NOTHING;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cocohooks.keep_truncated_hook_settings() FROM PUBLIC;
CREATE TRIGGER keep_truncated_hook_settings
    BEFORE TRUNCATE ON cocohooks.hooks
    FOR EACH STATEMENT EXECUTE FUNCTION cocohooks.keep_truncated_hook_settings();

-- The delivery log: failures always, successes with log_deliveries = 'all'.
CREATE TABLE cocohooks.deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hook_id     bigint           NOT NULL,
    event       text             NOT NULL,
    collection  text             NOT NULL,
    document_id text,
    success     boolean          NOT NULL,
    status_code integer,
    error       text,
    attempts    integer          NOT NULL,
    duration_ms double precision NOT NULL,
    queued_at   timestamptz      NOT NULL,
    finished_at timestamptz      NOT NULL,
    webhook_id  text             NOT NULL,
    payload     jsonb,           -- failed deliveries, all with log_deliveries = 'all'
    response    text,            -- first 1 kB of the last attempt's response body
    batch_id    text             -- the webhook-id of the batch it went in (NULL: alone)
);
-- One index on finished_at per kind of row: each has its own retention
-- (cocohooks.log_retention, log_retention_failed), and the worker's prune
-- of one kind must not walk over the other's rows kept longer.  Together
-- they cost a row what one index on finished_at did.
CREATE INDEX deliveries_succeeded_idx ON cocohooks.deliveries (finished_at) WHERE success;
CREATE INDEX deliveries_failed_idx ON cocohooks.deliveries (finished_at) WHERE NOT success;
CREATE INDEX deliveries_hook_id_idx ON cocohooks.deliveries (hook_id);

ALTER TABLE cocohooks.deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY deliveries_of_visible_hooks ON cocohooks.deliveries FOR SELECT
    USING (EXISTS (SELECT 1 FROM cocohooks.hooks h WHERE h.id = hook_id));

-- The row trigger register_hook() attaches to collections.
CREATE FUNCTION cocohooks.row_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_row_trigger';

CREATE FUNCTION cocohooks.register_hook(
    collection      regclass,
    event           text,
    url             text,
    headers         jsonb   DEFAULT '{}',
    secret          text    DEFAULT NULL,
    timeout_ms      integer DEFAULT 15000,
    max_retries     integer DEFAULT NULL,
    columns         text[]  DEFAULT NULL,
    exclude_columns text[]  DEFAULT NULL,
    ordering        text    DEFAULT 'document',
    retry_for       interval DEFAULT '1 day',
    filter          text    DEFAULT NULL,
    max_per_second  real    DEFAULT NULL,
    max_concurrent  integer DEFAULT NULL,
    batch_size      integer DEFAULT 1,
    batch_wait      interval DEFAULT '5 milliseconds'
) RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_register_hook';

CREATE FUNCTION cocohooks.unregister_hook(hook_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_unregister_hook';

CREATE FUNCTION cocohooks.enable_hook(hook_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_enable_hook';

CREATE FUNCTION cocohooks.disable_hook(hook_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_disable_hook';

-- A hook's settings changed in place: its id, its waiting events and
-- whatever is not given stay; clear names settings to set to NULL (none,
-- no limit, unsigned), since NULL arguments mean "not given".
CREATE FUNCTION cocohooks.alter_hook(
    hook_id         bigint,
    url             text     DEFAULT NULL,
    headers         jsonb    DEFAULT NULL,
    secret          text     DEFAULT NULL,
    timeout_ms      integer  DEFAULT NULL,
    max_retries     integer  DEFAULT NULL,
    columns         text[]   DEFAULT NULL,
    exclude_columns text[]   DEFAULT NULL,
    ordering        text     DEFAULT NULL,
    retry_for       interval DEFAULT NULL,
    filter          text     DEFAULT NULL,
    max_per_second  real     DEFAULT NULL,
    max_concurrent  integer  DEFAULT NULL,
    clear           text[]   DEFAULT NULL,
    batch_size      integer  DEFAULT NULL,
    batch_wait      interval DEFAULT NULL
) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_alter_hook';

CREATE FUNCTION cocohooks.rotate_secret(hook_id bigint, new_secret text,
                                        overlap interval DEFAULT '24 hours')
    RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_rotate_secret';

CREATE FUNCTION cocohooks.redeliver(delivery_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_redeliver';

-- Every event whose delivery to the hook failed for good (finished_at) in
-- [since, until] sent again, as redeliver() sends one.
CREATE FUNCTION cocohooks.redeliver_failed(hook_id bigint, since timestamptz,
                                           until timestamptz DEFAULT pg_catalog.now())
    RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_redeliver_failed';

CREATE FUNCTION cocohooks.wait_for_deliveries(timeout interval DEFAULT '30 seconds')
    RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_wait_for_deliveries';

CREATE FUNCTION cocohooks.queue_stats(
    OUT queued bigint,
    OUT delivered bigint,
    OUT failed bigint,
    OUT retried bigint,
    OUT dropped bigint,
    OUT in_flight integer,
    OUT queue_bytes_used bigint,
    OUT queue_bytes_total bigint,
    OUT durability text,
    OUT wal_retained_bytes bigint
) RETURNS record
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'cocohooks_stats';

-- Deliveries that wait to retry longer than the worker keeps them in memory
-- (parked): each row is the event, as the worker carries it, with this one
-- hook; taken back when next_attempt comes, deleted once delivered or
-- failed for good.  Rows of one document of an ordered hook go in id order.
-- Written by the worker only; it holds hook settings, so nobody else reads
-- it (cocohooks.stats counts it).
CREATE TABLE cocohooks.retry_queue (
    id              bigserial PRIMARY KEY,
    hook_id         bigint      NOT NULL,
    document_key    bigint,
    attempts        integer     NOT NULL,
    next_attempt    timestamptz NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    webhook_id      text        NOT NULL,
    message         bytea       NOT NULL,
    queued_at       timestamptz NOT NULL    -- the event's commit (hook_stats.lag)
);
CREATE INDEX retry_queue_next_attempt ON cocohooks.retry_queue (next_attempt);
CREATE INDEX retry_queue_document ON cocohooks.retry_queue (hook_id, document_key, id)
    WHERE document_key IS NOT NULL;

-- Hooks whose deliveries fail with no success since failing_since (the
-- first failed attempt after the last successful delivery): the worker
-- disables one once cocohooks.disable_failing_hooks_after has passed.
-- Written by the worker only, on a hook's first failure and its first
-- success after it; enable_hook() deletes the row (a fresh clock).  The
-- worker's state, not user data: not dumped (a restore starts the clocks
-- afresh, as it starts with no parked retries).
CREATE TABLE cocohooks.hook_failing (
    hook_id         bigint      PRIMARY KEY,
    failing_since   timestamptz NOT NULL
);
ALTER TABLE cocohooks.hook_failing ENABLE ROW LEVEL SECURITY;
CREATE POLICY hook_failing_of_visible_hooks ON cocohooks.hook_failing FOR SELECT
    USING (EXISTS (SELECT 1 FROM cocohooks.hooks h WHERE h.id = hook_id));

CREATE VIEW cocohooks.stats AS
    SELECT s.*, p.parked, p.parked_due
    FROM cocohooks.queue_stats() s,
         LATERAL (SELECT count(*) AS parked,
                         count(*) FILTER (WHERE next_attempt <= now()) AS parked_due
                  FROM cocohooks.retry_queue) p;

-- Per-hook statistics (cocohooks.hook_stats): the worker's counters in
-- shared memory, for the hooks the caller may see (the catalog's row
-- security), with what is parked of each.
CREATE FUNCTION cocohooks.hook_counters(
    OUT hook_id bigint,
    OUT queued bigint,
    OUT delivered bigint,
    OUT failed bigint,
    OUT dropped bigint,
    OUT retrying bigint,
    OUT parked bigint,
    OUT attempts_2xx bigint,
    OUT attempts_4xx bigint,
    OUT attempts_5xx bigint,
    OUT attempts_other bigint,
    OUT attempts_timeout bigint,
    OUT attempts_connection bigint,
    OUT attempts_blocked bigint,
    OUT last_success timestamptz,
    OUT last_failure timestamptz,
    OUT last_error text,
    OUT consecutive_failures bigint,
    OUT latency_p50_ms double precision,
    OUT latency_p95_ms double precision,
    OUT latency_p99_ms double precision,
    OUT latency_samples bigint,
    OUT oldest_undelivered timestamptz,
    OUT stats_reset timestamptz,
    OUT latency_bounds double precision[],
    OUT latency_buckets bigint[],
    OUT latency_sum double precision,
    OUT filter_errors bigint
) RETURNS SETOF record
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_hook_counters';

CREATE VIEW cocohooks.hook_stats AS
    SELECT s.hook_id, h.collection, h.event, h.enabled,
           s.queued, s.delivered, s.failed, s.dropped, s.retrying, s.parked,
           s.attempts_2xx, s.attempts_4xx, s.attempts_5xx, s.attempts_other,
           s.attempts_timeout, s.attempts_connection, s.attempts_blocked,
           s.last_success, s.last_failure, s.last_error, s.consecutive_failures,
           s.filter_errors, s.latency_p50_ms, s.latency_p95_ms, s.latency_p99_ms, s.latency_samples,
           GREATEST(pg_catalog.now() - s.oldest_undelivered,
                    interval '0') AS lag,
           s.oldest_undelivered, f.failing_since, s.stats_reset,
           s.latency_bounds, s.latency_buckets, s.latency_sum
    FROM cocohooks.hook_counters() s
    JOIN cocohooks.hooks h ON h.id = s.hook_id
    LEFT JOIN cocohooks.hook_failing f ON f.hook_id = s.hook_id;

-- Zeroes the statistics of a hook, or of every hook the caller may see.
CREATE FUNCTION cocohooks.reset_stats(hook_id bigint DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_reset_stats';

-- Backfills (cocohooks.backfill()): the rows a post_save hook's collection
-- already holds, sent to the hook as post_save events with "operation":
-- "backfill", a chunk at a time in primary-key order.  backfill() and
-- cancel_backfill() write a row; the worker records how far every event
-- is finished (last_key), and starts again after it following a restart.
-- The worker's state, not user data: not dumped.
CREATE TABLE cocohooks.backfill_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hook_id         bigint      NOT NULL REFERENCES cocohooks.hooks (id) ON DELETE CASCADE,
    -- sends only rows for which this is true (NULL: every row), as
    -- normalized text, and compiled
    filter          text,
    filter_tree     text,
    batch_rows      integer     NOT NULL CHECK (batch_rows BETWEEN 1 AND 10000),
    state           text        NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'done', 'cancelled', 'failed')),
    -- the primary key (as text) of the last row up to which every event is
    -- finished; NULL: from the first row
    last_key        text,
    rows_read       bigint      NOT NULL DEFAULT 0,
    rows_sent       bigint      NOT NULL DEFAULT 0,
    rows_filtered   bigint      NOT NULL DEFAULT 0,
    rows_superseded bigint      NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz,
    finished_at     timestamptz,
    error           text
);
CREATE INDEX backfill_jobs_hook_id_idx ON cocohooks.backfill_jobs (hook_id);
CREATE UNIQUE INDEX backfill_jobs_one_running ON cocohooks.backfill_jobs (hook_id)
    WHERE state = 'running';
ALTER TABLE cocohooks.backfill_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY backfill_jobs_of_visible_hooks ON cocohooks.backfill_jobs FOR SELECT
    USING (EXISTS (SELECT 1 FROM cocohooks.hooks h WHERE h.id = hook_id));

-- Progress of backfills, of the hooks the caller may see.
CREATE VIEW cocohooks.backfills WITH (security_invoker = true) AS
    SELECT b.id, b.hook_id, h.collection, b.state, b.filter, b.batch_rows,
           b.rows_read, b.rows_sent, b.rows_filtered, b.rows_superseded,
           GREATEST(c.reltuples, 0)::bigint AS rows_estimate,
           b.last_key, b.started_at, b.updated_at, b.finished_at, b.error
    FROM cocohooks.backfill_jobs b
    JOIN cocohooks.hooks h ON h.id = b.hook_id
    LEFT JOIN pg_catalog.pg_class c ON c.oid = h.collection;

CREATE FUNCTION cocohooks.backfill(hook_id bigint, filter text DEFAULT NULL,
                                   batch_rows integer DEFAULT 1000) RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_backfill';
CREATE FUNCTION cocohooks.cancel_backfill(backfill_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_cancel_backfill';

-- DROP TABLE of a collection removes its hooks.
CREATE FUNCTION cocohooks.drop_hooks_of_dropped_tables() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM cocohooks.hooks h
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid = 0
       AND h.collection::pg_catalog.oid = d.objid;
END
$$;
REVOKE ALL ON FUNCTION cocohooks.drop_hooks_of_dropped_tables() FROM PUBLIC;
CREATE EVENT TRIGGER cocohooks_drop_hooks ON sql_drop
    EXECUTE FUNCTION cocohooks.drop_hooks_of_dropped_tables();

-- CREATE TRIGGER and ALTER TRIGGER on a hooked table: a BEFORE trigger whose
-- name sorts after the hook's own makes its pre_* events go out from the
-- AFTER trigger, so that their document shows what that trigger did; so
-- does a stored generated column (ALTER TABLE), computed after them all.
CREATE FUNCTION cocohooks.sync_hook_triggers() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_sync_hook_triggers';
REVOKE ALL ON FUNCTION cocohooks.sync_hook_triggers() FROM PUBLIC;
CREATE EVENT TRIGGER cocohooks_sync_triggers ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'ALTER TRIGGER', 'ALTER TABLE')
    EXECUTE FUNCTION cocohooks.sync_hook_triggers();

-- ALTER TABLE ... RENAME COLUMN on a hooked table: its hooks' columns and
-- exclude_columns follow the new name (a column left out of payloads stays
-- out under any name).
CREATE FUNCTION cocohooks.follow_column_renames() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_follow_column_renames';
REVOKE ALL ON FUNCTION cocohooks.follow_column_renames() FROM PUBLIC;
CREATE EVENT TRIGGER cocohooks_follow_column_renames ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION cocohooks.follow_column_renames();

-- Privileges: everyone may register hooks on tables they own and read what
-- concerns those tables; only the functions above write the catalog.
REVOKE ALL ON ALL TABLES IN SCHEMA cocohooks FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cocohooks FROM PUBLIC;
GRANT USAGE ON SCHEMA cocohooks TO PUBLIC;
GRANT SELECT ON cocohooks.hooks, cocohooks.deliveries, cocohooks.stats,
    cocohooks.hook_failing, cocohooks.hook_stats, cocohooks.backfill_jobs,
    cocohooks.backfills TO PUBLIC;
