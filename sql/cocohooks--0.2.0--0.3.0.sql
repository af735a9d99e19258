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
    message         bytea       NOT NULL
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
    retry_for       interval DEFAULT '1 day'
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
