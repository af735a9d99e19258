-- cocohooks 0.2.0 -> 0.3.0 (ALTER EXTENSION cocohooks UPDATE).
--
-- Schema changes of 0.3 go here, each made in cocohooks--0.3.0.sql as well,
-- so that an updated 0.2.0 install (or a 0.1.0 one, updated through
-- cocohooks--0.1.0--0.2.0.sql and then this script) and a fresh 0.3.0
-- install end up the same (test/t/150_upgrade.pl compares them).  New
-- columns of cocohooks.hooks are appended, in the order the install script
-- lists them (src/hooks_catalog.h holds their numbers).
--
\echo Use "ALTER EXTENSION cocohooks UPDATE TO '0.3.0'" to load this file. \quit

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
REVOKE ALL ON cocohooks.retry_queue FROM PUBLIC;
REVOKE ALL ON SEQUENCE cocohooks.retry_queue_id_seq FROM PUBLIC;

-- cocohooks.stats gains the parked deliveries.
CREATE OR REPLACE VIEW cocohooks.stats AS
    SELECT s.*, p.parked, p.parked_due
    FROM cocohooks.queue_stats() s,
         LATERAL (SELECT count(*) AS parked,
                         count(*) FILTER (WHERE next_attempt <= now()) AS parked_due
                  FROM cocohooks.retry_queue) p;


-- Retries for a time (issue 20): retry_for bounds how long after the
-- event's commit a delivery is retried, max_retries NULL means no limit on
-- the count.  Hooks registered before the update keep their behaviour:
-- their retry_for is NULL (no time limit) and they keep their max_retries;
-- new hooks retry for a day by default, with no limit on the count.
ALTER TABLE cocohooks.hooks ALTER COLUMN max_retries DROP NOT NULL,
    ALTER COLUMN max_retries DROP DEFAULT;
ALTER TABLE cocohooks.hooks ADD COLUMN retry_for interval CHECK (retry_for > '0');
ALTER TABLE cocohooks.hooks ALTER COLUMN retry_for SET DEFAULT '1 day';
DROP FUNCTION cocohooks.register_hook(regclass, text, text, jsonb, text, integer, integer,
                                      text[], text[], text);
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
REVOKE ALL ON cocohooks.hook_failing FROM PUBLIC;
GRANT SELECT ON cocohooks.hook_failing TO PUBLIC;

-- No secret in the WAL (issue 21): events name their hooks' settings
-- versions; a hook's settings before a change, or before it was
-- unregistered, are kept in cocohooks.hook_versions while events may name
-- them.  Messages 0.2 wrote carry their hooks' settings and are still read.
ALTER TABLE cocohooks.hooks ADD COLUMN settings_version integer NOT NULL DEFAULT 1;

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
REVOKE ALL ON cocohooks.hook_versions FROM PUBLIC;

-- Row filters and per-hook pace (issue 22).
ALTER TABLE cocohooks.hooks ADD COLUMN filter text;
ALTER TABLE cocohooks.hooks ADD COLUMN filter_tree text;
ALTER TABLE cocohooks.hooks ADD COLUMN max_per_second real CHECK (max_per_second > 0);
ALTER TABLE cocohooks.hooks ADD COLUMN max_concurrent integer CHECK (max_concurrent >= 1);

-- Batched delivery (issue 24): up to batch_size events in one request,
-- gathered for at most batch_wait; 1 sends each event alone, as before.
-- Each log row names the batch its event went in (NULL: alone).
ALTER TABLE cocohooks.hooks ADD COLUMN batch_size integer NOT NULL DEFAULT 1
    CHECK (batch_size BETWEEN 1 AND 1000);
ALTER TABLE cocohooks.hooks ADD COLUMN batch_wait interval NOT NULL DEFAULT '5 milliseconds'
    CHECK (batch_wait >= '0' AND batch_wait <= '10 seconds');
ALTER TABLE cocohooks.deliveries ADD COLUMN batch_id text;

-- A hook's filter is compiled from its text into filter_tree on every
-- insert (a restore's too: column numbers and oids change) and on every
-- change of the text (alter_hook, a column rename).
CREATE FUNCTION cocohooks.compile_hook_filter() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cocohooks_compile_hook_filter';
REVOKE ALL ON FUNCTION cocohooks.compile_hook_filter() FROM PUBLIC;
CREATE TRIGGER compile_hook_filter
    BEFORE INSERT OR UPDATE OF filter, collection, event ON cocohooks.hooks
    FOR EACH ROW EXECUTE FUNCTION cocohooks.compile_hook_filter();

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

-- Every event whose delivery to the hook failed for good (finished_at) in
-- [since, until] sent again, as redeliver() sends one.
CREATE FUNCTION cocohooks.redeliver_failed(hook_id bigint, since timestamptz,
                                           until timestamptz DEFAULT pg_catalog.now())
    RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_redeliver_failed';

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

GRANT SELECT ON cocohooks.hook_stats TO PUBLIC;

-- Failures and successes have their own retentions (log_retention_failed):
-- an index on finished_at per kind, for the worker's prune of each, in
-- place of the one on all rows.
DROP INDEX cocohooks.deliveries_finished_at_idx;
CREATE INDEX deliveries_succeeded_idx ON cocohooks.deliveries (finished_at) WHERE success;
CREATE INDEX deliveries_failed_idx ON cocohooks.deliveries (finished_at) WHERE NOT success;

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
-- as the install script's REVOKE ALL ON ALL SEQUENCES leaves it
REVOKE ALL ON SEQUENCE cocohooks.backfill_jobs_id_seq FROM PUBLIC;
GRANT SELECT ON cocohooks.backfill_jobs, cocohooks.backfills TO PUBLIC;
