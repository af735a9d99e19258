-- cocohooks 0.1.0 -> 0.2.0 (ALTER EXTENSION cocohooks UPDATE).
--
-- Every schema change of 0.2.0 is made here as well as in
-- cocohooks--0.2.0.sql, so that an updated 0.1.0 install and a fresh 0.2.0
-- install end up the same (test/t/150_upgrade.pl compares them).  New
-- columns of cocohooks.hooks are appended, in the order the install script
-- lists them (src/hooks_catalog.h holds their numbers).
\echo Use "ALTER EXTENSION cocohooks UPDATE TO '0.2.0'" to load this file. \quit

-- cocohooks.stats gains durability and wal_retained_bytes (SPEC section 7).
DROP VIEW cocohooks.stats;
DROP FUNCTION cocohooks.queue_stats();
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
CREATE VIEW cocohooks.stats AS SELECT * FROM cocohooks.queue_stats();
REVOKE ALL ON cocohooks.stats FROM PUBLIC;
GRANT SELECT ON cocohooks.stats TO PUBLIC;

-- A 410 Gone disables a hook and says why; secrets rotate with an overlap;
-- the log keeps the start of each response (SPEC section 8).
ALTER TABLE cocohooks.hooks ADD COLUMN disabled_reason text;
ALTER TABLE cocohooks.hooks ADD COLUMN previous_secret text;
ALTER TABLE cocohooks.hooks ADD COLUMN previous_secret_until timestamptz;
ALTER TABLE cocohooks.deliveries ADD COLUMN response text;

-- Secret rotation with an overlap (SPEC section 8).
CREATE FUNCTION cocohooks.rotate_secret(hook_id bigint, new_secret text,
                                        overlap interval DEFAULT '24 hours')
    RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_rotate_secret';

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

-- The hook triggers get ASCII names, the same in every encoding and
-- readable from every client (0.1.0 named them with U+00FF, which LATIN1
-- and KOI8R clients could not show).  Renaming fires the event trigger
-- above, which adds the AFTER trigger's coverage where a BEFORE trigger
-- now sorts after the hook's.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.tgrelid::pg_catalog.regclass AS rel, tg.tgname,
               (tg.tgtype & 2) <> 0 AS before
          FROM pg_catalog.pg_trigger tg
         WHERE tg.tgfoid = 'cocohooks.row_trigger()'::pg_catalog.regprocedure
           AND tg.tgparentid = 0
    LOOP
        EXECUTE pg_catalog.format('ALTER TRIGGER %I ON %s RENAME TO %I', t.tgname, t.rel,
                                  CASE WHEN t.before THEN '~cocohooks_pre' ELSE '~cocohooks_post' END);
    END LOOP;
END
$$;

-- Filtered by column, secrets left out, ordered per document (SPEC
-- section 9): register_hook gains three arguments after max_retries.
ALTER TABLE cocohooks.hooks ADD COLUMN columns text[];
ALTER TABLE cocohooks.hooks ADD COLUMN exclude_columns text[];
ALTER TABLE cocohooks.hooks ADD COLUMN ordering text NOT NULL DEFAULT 'document'
    CHECK (ordering IN ('document', 'none'));
DROP FUNCTION cocohooks.register_hook(regclass, text, text, jsonb, text, integer, integer);
CREATE FUNCTION cocohooks.register_hook(
    collection      regclass,
    event           text,
    url             text,
    headers         jsonb   DEFAULT '{}',
    secret          text    DEFAULT NULL,
    timeout_ms      integer DEFAULT 15000,
    max_retries     integer DEFAULT 0,
    columns         text[]  DEFAULT NULL,
    exclude_columns text[]  DEFAULT NULL,
    ordering        text    DEFAULT 'document'
) RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cocohooks_register_hook';
