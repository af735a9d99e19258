-- Only sessions tagged with cocohooks.api_session fire hooks (docs/guarantees.md §3).
-- Receiver paths used here all begin with /api/.
\set su :USER
\set db :DBNAME

CREATE TABLE api_t (id int PRIMARY KEY, v text);
SELECT cocohooks.register_hook('api_t', e, recv_url('/api/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;

-- the events received per document id in [lo, hi]
CREATE FUNCTION api_seen(lo int, hi int) RETURNS TABLE (id int, events text)
LANGUAGE sql AS $$
  SELECT (body::jsonb->'document'->>'id')::int,
         string_agg(body::jsonb->>'event', ' ' ORDER BY body::jsonb->>'event')
    FROM recv('/api/')
   WHERE (body::jsonb->'document'->>'id')::int BETWEEN lo AND hi
   GROUP BY 1 ORDER BY 1
$$;

-- the setting: boolean, default off
SELECT name, setting, vartype, context, boot_val FROM pg_settings
 WHERE name = 'cocohooks.api_session';
SHOW cocohooks.api_session;

-- without it nothing fires: not INSERT, UPDATE, DELETE nor COPY
INSERT INTO api_t VALUES (1, 'direct');
UPDATE api_t SET v = 'direct update' WHERE id = 1;
DELETE FROM api_t WHERE id = 1;
COPY api_t FROM stdin;
2	copied
\.
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(1, 9);

-- SET: the session fires, until it is turned off again
SET cocohooks.api_session = on;
INSERT INTO api_t VALUES (10, 'api');
UPDATE api_t SET v = 'api update' WHERE id = 10;
DELETE FROM api_t WHERE id = 10;
SET cocohooks.api_session = off;
INSERT INTO api_t VALUES (11, 'off again');
SET cocohooks.api_session TO true;
INSERT INTO api_t VALUES (12, 'on as true');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(10, 19);

-- RESET: back to the default, off
RESET cocohooks.api_session;
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (13, 'after reset');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(10, 19);

-- SET LOCAL: fires inside the transaction, not after it
BEGIN;
SET LOCAL cocohooks.api_session = on;
INSERT INTO api_t VALUES (20, 'local');
COMMIT;
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (21, 'after the local transaction');
-- set_config(..., is_local => true) is the same
BEGIN;
SELECT set_config('cocohooks.api_session', 'on', true);
INSERT INTO api_t VALUES (22, 'set_config local');
COMMIT;
INSERT INTO api_t VALUES (23, 'after set_config local');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(20, 29);

-- the setting is read when the row trigger fires: turned off later in the
-- transaction, the rows written while on still get their post_* events
BEGIN;
SET LOCAL cocohooks.api_session = on;
INSERT INTO api_t VALUES (30, 'while on');
SET LOCAL cocohooks.api_session = off;
INSERT INTO api_t VALUES (31, 'while off');
COMMIT;
-- and turned on in the middle of a transaction, only later rows fire
BEGIN;
INSERT INTO api_t VALUES (32, 'before on');
SET LOCAL cocohooks.api_session = on;
INSERT INTO api_t VALUES (33, 'after on');
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(30, 39);

-- any user may set it: a role with no special rights
CREATE ROLE regress_coco_api LOGIN;
CREATE ROLE regress_coco_plain LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_t TO regress_coco_api, regress_coco_plain;
SET ROLE regress_coco_plain;
SET cocohooks.api_session = on;
INSERT INTO api_t VALUES (40, 'plain role, SET');
RESET cocohooks.api_session;
INSERT INTO api_t VALUES (41, 'plain role, reset');
RESET ROLE;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(40, 49);

-- per role: ALTER ROLE ... SET, then a new session as that role
ALTER ROLE regress_coco_api SET cocohooks.api_session = on;
\c - regress_coco_api
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (50, 'api role');
UPDATE api_t SET v = 'api role update' WHERE id = 50;
-- SET off overrides the role default; RESET returns to it
SET cocohooks.api_session = off;
INSERT INTO api_t VALUES (51, 'api role, set off');
RESET cocohooks.api_session;
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (52, 'api role, reset');
-- other roles are not affected
\c - regress_coco_plain
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (53, 'plain role');
\c - :su
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(50, 59);

-- per connection: options in the connection string
\set conn 'dbname=' :db ' options=-ccocohooks.api_session=on'
\c :conn
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (60, 'connection option');
-- (a new connection string, so psql does not reuse the options)
\set conn 'dbname=' :db
\c :conn
SHOW cocohooks.api_session;
INSERT INTO api_t VALUES (61, 'new plain connection');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM api_seen(60, 69);

-- every event received was from a tagged write
SELECT count(*) AS requests FROM recv('/api/');

DROP TABLE api_t;
DROP FUNCTION api_seen(int, int);
ALTER ROLE regress_coco_api RESET cocohooks.api_session;
DROP ROLE regress_coco_api, regress_coco_plain;
SELECT count(*) FROM cocohooks.hooks;
