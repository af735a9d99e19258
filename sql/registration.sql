-- Registering, enabling, disabling and unregistering hooks; ownership.
\set su :USER
-- Receiver paths used here all begin with /registration/.

-- the signatures of docs/guarantees.md §2, with their defaults
SELECT p.proname, pg_get_function_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p
 WHERE p.pronamespace = 'cocohooks'::regnamespace
   AND p.proname IN ('register_hook', 'unregister_hook', 'enable_hook',
                     'disable_hook', 'wait_for_deliveries')
 ORDER BY 1;

-- The triggers cocohooks keeps on a table: their names are ASCII (the same
-- in every encoding, readable from every client) and sort after every name
-- made of letters, digits and '_' (docs/guarantees.md §8; test/t/240_trigger_names.pl).
CREATE FUNCTION hook_triggers(rel regclass)
RETURNS TABLE (name name, definition text, sorts_after_words boolean) LANGUAGE sql AS $$
  SELECT t.tgname,
         regexp_replace(pg_get_triggerdef(t.oid), '^CREATE TRIGGER .* (BEFORE|AFTER) ', '\1 '),
         t.tgname::text COLLATE "C" > repeat('z', 63) COLLATE "C"
    FROM pg_trigger t
   WHERE t.tgrelid = rel AND NOT t.tgisinternal
     AND t.tgfoid = 'cocohooks.row_trigger'::regproc
   ORDER BY 1
$$;

CREATE TABLE reg_items (id int PRIMARY KEY, name text);

-- no hooks, no triggers
SELECT * FROM hook_triggers('reg_items');

-- register with every default
BEGIN;
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/one')) AS h1 \gset
SELECT :h1 > 0 AS positive_id;
SELECT id = :h1 AS same_id, collection, event, url = recv_url('/registration/one') AS url_ok,
       headers, secret, enabled, timeout_ms, max_retries,
       created_at = now() AS created_in_this_transaction_time
  FROM cocohooks.hooks WHERE id = :h1;
COMMIT;
SELECT * FROM hook_triggers('reg_items');

-- register with every argument given, by name
SELECT cocohooks.register_hook(collection => 'reg_items', event => 'pre_delete',
         url => recv_url('/registration/two'), headers => '{"X-Api-Key": "k1", "X-Other": "o"}',
         secret => 'whsec_c2VjcmV0', timeout_ms => 1234, max_retries => 3) AS h2 \gset
SELECT :h2 > :h1 AS ids_increase;
SELECT collection, event, url = recv_url('/registration/two') AS url_ok,
       headers, secret, enabled, timeout_ms, max_retries
  FROM cocohooks.hooks WHERE id = :h2;
SELECT * FROM hook_triggers('reg_items');

-- a pre_save hook widens the BEFORE trigger; post_delete widens the AFTER one
SELECT cocohooks.register_hook('reg_items', 'pre_save', recv_url('/registration/three')) AS h3 \gset
SELECT cocohooks.register_hook('reg_items', 'post_delete', recv_url('/registration/four')) AS h4 \gset
SELECT * FROM hook_triggers('reg_items');
SELECT count(*) FROM cocohooks.hooks WHERE collection = 'reg_items'::regclass;

-- several hooks on one collection and event: all fire
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/multi/a')) AS ma \gset
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/multi/b')) AS mb \gset
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/multi/c')) AS mc \gset
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (1, 'first');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, count(*) FROM recv('/registration/') GROUP BY path ORDER BY path;

-- a disabled hook fires nothing; the others still fire
SELECT cocohooks.disable_hook(:mb);
SELECT enabled FROM cocohooks.hooks WHERE id = :mb;
SELECT cocohooks.disable_hook(:mb) AS disable_again;
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (2, 'second');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, count(*) FROM recv('/registration/multi/') GROUP BY path ORDER BY path;

-- re-enabled, it fires again
SELECT cocohooks.enable_hook(:mb);
SELECT enabled FROM cocohooks.hooks WHERE id = :mb;
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (3, 'third');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, count(*) FROM recv('/registration/multi/') GROUP BY path ORDER BY path;

-- all hooks disabled: nothing fires at all, the triggers stay
SELECT cocohooks.disable_hook(id) FROM cocohooks.hooks WHERE collection = 'reg_items'::regclass ORDER BY id;
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (4, 'fourth');
UPDATE reg_items SET name = 'FOURTH' WHERE id = 4;
DELETE FROM reg_items WHERE id = 4;
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS requests_so_far FROM recv('/registration/');
SELECT * FROM hook_triggers('reg_items');
SELECT cocohooks.enable_hook(id) FROM cocohooks.hooks WHERE collection = 'reg_items'::regclass ORDER BY id;

-- a hook registered once this session has already fired for the collection
-- (its hook cache is built) fires at once, in this session too
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (6, 'sixth');
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/late')) AS late \gset
INSERT INTO reg_items VALUES (7, 'seventh');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, count(*) FROM recv('/registration/') WHERE body::jsonb->'document'->>'id' = '7'
 GROUP BY path ORDER BY path;

-- enable/disable/unregister of a hook that does not exist: false
SELECT cocohooks.enable_hook(-1) AS enable_missing,
       cocohooks.disable_hook(-1) AS disable_missing,
       cocohooks.unregister_hook(-1) AS unregister_missing;
SELECT cocohooks.enable_hook(:h1 + 1000000) AS enable_missing,
       cocohooks.disable_hook(:h1 + 1000000) AS disable_missing;

-- unregister: true, then false; the triggers follow the remaining hooks
SELECT cocohooks.unregister_hook(:h2) AS first_time;
SELECT cocohooks.unregister_hook(:h2) AS second_time;
SELECT count(*) FROM cocohooks.hooks WHERE id = :h2;
SELECT * FROM hook_triggers('reg_items');
SELECT cocohooks.unregister_hook(:h3);
SELECT * FROM hook_triggers('reg_items');
SELECT cocohooks.unregister_hook(:h4);
SELECT * FROM hook_triggers('reg_items');
SELECT cocohooks.unregister_hook(:h1), cocohooks.unregister_hook(:ma),
       cocohooks.unregister_hook(:mb), cocohooks.unregister_hook(:late);
SELECT * FROM hook_triggers('reg_items');
SELECT cocohooks.unregister_hook(:mc) AS last_one;
-- no hook left: no trigger left
SELECT * FROM hook_triggers('reg_items');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'reg_items'::regclass;
SELECT count(*) FROM cocohooks.hooks;
-- and nothing fires
SET cocohooks.api_session = on;
INSERT INTO reg_items VALUES (5, 'fifth');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS requests_so_far FROM recv('/registration/');

-- an unregistered hook is gone for good: its id is not reused
SELECT cocohooks.register_hook('reg_items', 'post_save', recv_url('/registration/again')) AS h5 \gset
SELECT :h5 > :mc AS new_id;
SELECT cocohooks.enable_hook(:h1) AS enable_unregistered;

-- DROP TABLE removes the table's hooks, and only those
CREATE TABLE reg_other (id int PRIMARY KEY);
SELECT cocohooks.register_hook('reg_other', 'post_delete', recv_url('/registration/other')) AS h6 \gset
SELECT count(*) FROM cocohooks.hooks;
DROP TABLE reg_items;
SELECT id = :h6 AS only_other_left, event FROM cocohooks.hooks;
SELECT cocohooks.unregister_hook(:h5) AS dropped_hook_gone;
DROP TABLE reg_other;
SELECT count(*) FROM cocohooks.hooks;

-- Ownership
CREATE ROLE regress_coco_alice LOGIN;
CREATE ROLE regress_coco_bob LOGIN;
CREATE ROLE regress_coco_writer LOGIN;
GRANT CREATE ON SCHEMA public TO regress_coco_alice, regress_coco_bob;
CREATE TABLE reg_admin (id int PRIMARY KEY);
SELECT cocohooks.register_hook('reg_admin', 'post_save', recv_url('/registration/admin')) AS ha \gset

SET ROLE regress_coco_alice;
CREATE TABLE reg_alice (id int PRIMARY KEY, v text);
SELECT cocohooks.register_hook('reg_alice', 'post_save', recv_url('/registration/alice')) AS hal \gset
SELECT cocohooks.register_hook('reg_alice', 'pre_save', recv_url('/registration/alice-pre')) AS halp \gset
-- alice sees only the hooks of her tables
SELECT collection, event FROM cocohooks.hooks ORDER BY id;
-- and cannot register on, or change, the hooks of a table she does not own
SELECT cocohooks.register_hook('reg_admin', 'post_save', recv_url('/registration/alice-steals'));
SELECT cocohooks.disable_hook(:ha);
SELECT cocohooks.enable_hook(:ha);
SELECT cocohooks.unregister_hook(:ha);
-- nor write the catalog directly
INSERT INTO cocohooks.hooks (collection, event, url) VALUES ('reg_admin', 'post_save', 'http://127.0.0.1/x');
UPDATE cocohooks.hooks SET enabled = false;
DELETE FROM cocohooks.hooks;
-- but her RENAME COLUMN updates her hooks' column names (as the catalog's owner)
SELECT cocohooks.register_hook('reg_alice', 'post_delete', recv_url('/registration/alice-del'),
         exclude_columns => ARRAY['v']) AS hald \gset
ALTER TABLE reg_alice RENAME COLUMN v TO val;
SELECT exclude_columns FROM cocohooks.hooks WHERE id = :hald;
ALTER TABLE reg_alice RENAME COLUMN val TO v;
SELECT exclude_columns FROM cocohooks.hooks WHERE id = :hald;
SELECT cocohooks.unregister_hook(:hald);
RESET ROLE;

SET ROLE regress_coco_bob;
SELECT count(*) AS bob_sees FROM cocohooks.hooks;
SELECT cocohooks.register_hook('reg_alice', 'post_delete', recv_url('/registration/bob'));
SELECT cocohooks.disable_hook(:hal);
SELECT cocohooks.unregister_hook(:halp);
RESET ROLE;

-- the superuser sees all, and nothing changed
SELECT collection, event, enabled FROM cocohooks.hooks ORDER BY id;
SELECT * FROM hook_triggers('reg_alice');

-- a superuser may manage anybody's hooks
SELECT cocohooks.disable_hook(:hal), cocohooks.enable_hook(:hal);

-- The writing role needs no privilege on schema cocohooks: only INSERT on the
-- table (in a new session, so nothing is cached yet).
GRANT INSERT, UPDATE ON reg_alice TO regress_coco_writer;
REVOKE USAGE ON SCHEMA cocohooks FROM PUBLIC;
\c - regress_coco_writer
SELECT has_schema_privilege('cocohooks', 'USAGE') AS writer_has_usage;
SET cocohooks.api_session = on;
INSERT INTO reg_alice VALUES (1, 'by writer');
UPDATE reg_alice SET v = 'updated by writer';
\c - :su
GRANT USAGE ON SCHEMA cocohooks TO PUBLIC;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, json_keys(body), body::jsonb->>'operation' AS operation,
       body::jsonb->'document' AS document
  FROM recv('/registration/alice') ORDER BY path, operation;

-- a role with only INSERT (and no USAGE) on a hooked table writes without error
-- even when the session is not tagged
\c - regress_coco_writer
INSERT INTO reg_alice VALUES (2, 'untagged');
\c - :su
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS alice_requests FROM recv('/registration/alice');

-- clean up
DROP TABLE reg_alice;
DROP TABLE reg_admin;
SELECT count(*) FROM cocohooks.hooks;
REVOKE CREATE ON SCHEMA public FROM regress_coco_alice, regress_coco_bob;
DROP ROLE regress_coco_alice, regress_coco_bob, regress_coco_writer;
