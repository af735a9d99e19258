-- The JSON bodies of the four events (SPEC §4).
-- Receiver paths used here all begin with /payloads/.

-- every request of this file, parsed; keys = the body's keys in text order
CREATE VIEW pl_req AS
  SELECT n, path, body, body::jsonb AS b, json_keys(body) AS keys
    FROM recv('/payloads/');

-- the row as stored, captured after each step
CREATE TABLE pl_snap (label text PRIMARY KEY, doc jsonb);

CREATE TABLE pl_items (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    qty     int DEFAULT 7,
    total   int GENERATED ALWAYS AS (qty * 2) STORED,
    created timestamptz DEFAULT '2024-01-02 03:04:05+00',
    tags    text[],
    meta    jsonb,
    data    bytea,
    note    text
);
-- another BEFORE trigger, whose name sorts before the hook trigger's
CREATE FUNCTION pl_modify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.note := 'zzz:' || NEW.name;
    RETURN NEW;
END $$;
CREATE TRIGGER zzz_modify BEFORE INSERT OR UPDATE ON pl_items
    FOR EACH ROW EXECUTE FUNCTION pl_modify();

SELECT cocohooks.register_hook('pl_items', e, recv_url('/payloads/items/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;

SET cocohooks.api_session = on;

-- create
INSERT INTO pl_items (id, name, tags, meta, data)
VALUES (1, 'alpha', '{a,b}', '{"k": [1, 2]}', '\x0102');
INSERT INTO pl_snap SELECT 'created', to_jsonb(t) FROM pl_items t WHERE id = 1;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, keys, b->>'event' AS event, b->>'collection' AS collection,
       b->>'operation' AS operation, b->'document_id' AS document_id
  FROM pl_req ORDER BY path;
-- post_save: the row as stored, with its defaults and generated column
SELECT b->'document' = (SELECT doc FROM pl_snap WHERE label = 'created') AS is_stored_row,
       b->'document'->'qty' AS qty, b->'document'->'total' AS total,
       b->'document'->'note' AS note
  FROM pl_req WHERE path = '/payloads/items/post_save';
-- pre_save: the row after zzz_modify ran, defaults filled in; the generated
-- column is computed only after the BEFORE triggers
SELECT (b->'document') - 'total'::text = (SELECT doc - 'total'::text FROM pl_snap WHERE label = 'created') AS is_row_to_write,
       b->'document'->'note' AS note, b->'document'->'qty' AS qty,
       b->'document'->'created' = to_jsonb('2024-01-02 03:04:05+00'::timestamptz) AS default_created
  FROM pl_req WHERE path = '/payloads/items/pre_save';
-- no delete events
SELECT count(*) FROM pl_req WHERE path LIKE '%delete';

-- update
UPDATE pl_items SET name = 'beta', qty = 10 WHERE id = 1;
INSERT INTO pl_snap SELECT 'updated', to_jsonb(t) FROM pl_items t WHERE id = 1;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, keys, b->>'event' AS event, b->>'collection' AS collection,
       b->>'operation' AS operation, b->'document_id' AS document_id
  FROM pl_req WHERE n > 2 ORDER BY path;
SELECT path,
       CASE WHEN path LIKE '%pre_save'
            THEN (b->'document') - 'total'::text = (SELECT doc - 'total'::text FROM pl_snap WHERE label = 'updated')
            ELSE b->'document' = (SELECT doc FROM pl_snap WHERE label = 'updated') END AS document_ok,
       b->'old_data' = (SELECT doc FROM pl_snap WHERE label = 'created') AS old_data_is_previous_row,
       b->'document'->'note' AS note, b->'document'->'qty' AS qty
  FROM pl_req WHERE n > 2 ORDER BY path;
SELECT b->'document'->'total' AS total FROM pl_req WHERE n > 2 AND path LIKE '%post_save';

-- delete
DELETE FROM pl_items WHERE id = 1;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, keys, b->>'event' AS event, b->>'collection' AS collection,
       b->'document_id' AS document_id,
       b->'document' = (SELECT doc FROM pl_snap WHERE label = 'updated') AS document_is_deleted_row,
       b ? 'operation' AS has_operation, b ? 'old_data' AS has_old_data
  FROM pl_req WHERE n > 4 ORDER BY path;
SELECT count(*) AS total_requests FROM pl_req;

-- The exact body text, on a simple table with a text key that needs escaping.
CREATE TABLE pl_text (code text PRIMARY KEY, label text, n int);
SELECT cocohooks.register_hook('pl_text', e, recv_url('/payloads/text/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;
INSERT INTO pl_text VALUES (E'k"1\\', E'quote " backslash \\ tab \t newline \n unicode é ☃ 😀', 1);
SELECT cocohooks.wait_for_deliveries('20 s');
UPDATE pl_text SET n = 2;
SELECT cocohooks.wait_for_deliveries('20 s');
DELETE FROM pl_text;
SELECT cocohooks.wait_for_deliveries('20 s');
-- (in the order of the writes; concurrent deliveries may arrive in any order)
SELECT path, body FROM recv('/payloads/text/')
 ORDER BY body::jsonb->>'operation' = 'update', split_part(path, '/', 4) LIKE '%delete',
          split_part(path, '/', 4) LIKE 'post%', n;
SELECT path, b->>'document_id' = E'k"1\\' AS document_id_is_key,
       (b->'document'->>'label') = E'quote " backslash \\ tab \t newline \n unicode é ☃ 😀' AS label_round_trips
  FROM (SELECT n, path, body::jsonb AS b FROM recv('/payloads/text/')) r
 ORDER BY b->>'operation' = 'update', path LIKE '%delete', path LIKE '%/post%', n;

-- document_id is the key as a JSON string: uuid and bigint keys
CREATE TABLE pl_uuid (id uuid PRIMARY KEY, v int);
CREATE TABLE pl_big (id bigint PRIMARY KEY, v int);
SELECT cocohooks.register_hook('pl_uuid', 'post_save', recv_url('/payloads/uuid/post_save')) > 0 AS registered;
SELECT cocohooks.register_hook('pl_uuid', 'pre_delete', recv_url('/payloads/uuid/pre_delete')) > 0 AS registered;
SELECT cocohooks.register_hook('pl_big', 'post_delete', recv_url('/payloads/big/post_delete')) > 0 AS registered;
INSERT INTO pl_uuid VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1);
DELETE FROM pl_uuid;
INSERT INTO pl_big VALUES (9007199254740993, 1), (-5, 2);
DELETE FROM pl_big;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, jsonb_typeof(b->'document_id') AS id_type, b->'document_id' AS document_id,
       b->'document' AS document
  FROM pl_req WHERE path LIKE '/payloads/uuid/%' OR path LIKE '/payloads/big/%'
 ORDER BY path, b->>'document_id';

-- A partitioned table reports its own name, never a partition's
CREATE TABLE pl_parted (id int PRIMARY KEY, region text) PARTITION BY RANGE (id);
CREATE TABLE pl_parted_low PARTITION OF pl_parted FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE pl_parted_high PARTITION OF pl_parted FOR VALUES FROM (100) TO (MAXVALUE);
SELECT cocohooks.register_hook('pl_parted', e, recv_url('/payloads/parted/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;
-- a partition created after the hooks are registered is covered too
CREATE TABLE pl_parted_later (id int PRIMARY KEY, region text);
ALTER TABLE pl_parted DETACH PARTITION pl_parted_high;
ALTER TABLE pl_parted ATTACH PARTITION pl_parted_later FOR VALUES FROM (100) TO (1000);
INSERT INTO pl_parted VALUES (1, 'low'), (500, 'later');
UPDATE pl_parted SET region = region || '!';
DELETE FROM pl_parted;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, b->>'collection' AS collection, b->>'operation' AS operation,
       b->'document_id' AS document_id, b->'document' AS document, b->'old_data' AS old_data
  FROM pl_req WHERE path LIKE '/payloads/parted/%'
 ORDER BY path, b->>'operation', (b->'document'->>'id')::int;

-- COPY fires per row, like INSERT
CREATE TABLE pl_copy (id int PRIMARY KEY, v text);
SELECT cocohooks.register_hook('pl_copy', e, recv_url('/payloads/copy/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save']) AS e;
COPY pl_copy FROM stdin;
1	one
2	two
3	three
\.
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, b->>'operation' AS operation, b->'document_id' AS document_id,
       b->'document' AS document
  FROM pl_req WHERE path LIKE '/payloads/copy/%'
 ORDER BY path, b->'document'->>'id';

-- INSERT ... ON CONFLICT DO UPDATE that updates is an update (pre_save and
-- post_save alike); one that inserts is a create
CREATE TABLE pl_upsert (id int PRIMARY KEY, v text, hits int DEFAULT 1);
INSERT INTO pl_upsert VALUES (1, 'existing', 1);
SELECT cocohooks.register_hook('pl_upsert', e, recv_url('/payloads/upsert/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save']) AS e;
INSERT INTO pl_upsert VALUES (1, 'proposed') ON CONFLICT (id)
  DO UPDATE SET v = EXCLUDED.v || ' (upserted)', hits = pl_upsert.hits + 1;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, keys, b->>'operation' AS operation, b->'document' AS document,
       b->'old_data' AS old_data
  FROM pl_req WHERE path LIKE '/payloads/upsert/%' ORDER BY path, n;
INSERT INTO pl_upsert VALUES (2, 'new') ON CONFLICT (id)
  DO UPDATE SET v = EXCLUDED.v || ' (upserted)', hits = pl_upsert.hits + 1;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, keys, b->>'operation' AS operation, b->'document' AS document
  FROM pl_req WHERE path LIKE '/payloads/upsert/%' AND b->>'document_id' IS DISTINCT FROM '1'
   AND b->'document'->>'id' = '2' ORDER BY path, n;

-- Column types: the document is to_jsonb(row), whatever the types
CREATE TABLE pl_types (
    id    int PRIMARY KEY,
    num   numeric,
    big   numeric,
    f     double precision,
    ts    timestamptz,
    d     date,
    iv    interval,
    j     jsonb,
    js    json,
    arr   int[],
    tarr  text[],
    nul   text,
    b     boolean,
    t     text,
    bin   bytea,
    u     uuid,
    "Mixed Case" text
);
SELECT cocohooks.register_hook('pl_types', e, recv_url('/payloads/types/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save']) AS e;
INSERT INTO pl_types VALUES (
    1, 3.14159, 123456789012345678901234567890.000001, 1.5e30,
    '2024-02-29 23:59:59.123456+05:30', '2024-02-29', '1 day 2 hours',
    '{"nested": {"a": [1, null, "x"]}, "n": 1.0}', '{"keep":  "spacing", "keep": 2}',
    '{1,2,NULL}', E'{"a b","c\\"d",NULL}', NULL, true,
    E'it''s "quoted" \\ back\\slash \u00e9\u2603 \U0001F600', '\xdeadbeef00',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'mc');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, b->'document' = (SELECT to_jsonb(pt) FROM pl_types pt) AS document_is_to_jsonb_row
  FROM pl_req WHERE path LIKE '/payloads/types/%' ORDER BY path;
-- columns whose value differs (none)
SELECT r.path, k, r.b->'document'->k AS sent, to_jsonb(pt)->k AS stored
  FROM pl_req r, pl_types pt, jsonb_object_keys(to_jsonb(pt)) k
 WHERE r.path LIKE '/payloads/types/%' AND r.b->'document'->k IS DISTINCT FROM to_jsonb(pt)->k
 ORDER BY 1, 2;
SELECT jsonb_pretty(b->'document') AS document
  FROM pl_req WHERE path = '/payloads/types/post_save';
-- numbers keep their text: the body carries numeric exactly
SELECT body LIKE '%123456789012345678901234567890.000001%' AS numeric_exact
  FROM pl_req WHERE path = '/payloads/types/post_save';

RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS payload_requests FROM pl_req;
SELECT count(*) AS failures_logged FROM cocohooks.deliveries WHERE collection LIKE 'pl_%';

DROP TABLE pl_items, pl_text, pl_uuid, pl_big, pl_parted, pl_parted_high, pl_copy,
           pl_upsert, pl_types, pl_snap;
DROP FUNCTION pl_modify();
DROP VIEW pl_req;
SELECT count(*) FROM cocohooks.hooks;
