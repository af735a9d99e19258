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

