-- The JSON bodies of the four events (docs/guarantees.md §4).
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
-- pre_save: the row after zzz_modify ran, defaults filled in, and its
-- stored generated column (PostgreSQL computes it after every BEFORE
-- trigger, so this event goes out from the AFTER trigger): the row to write
SELECT b->'document' = (SELECT doc FROM pl_snap WHERE label = 'created') AS is_row_to_write,
       b->'document'->'note' AS note, b->'document'->'qty' AS qty, b->'document'->'total' AS total,
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
       b->'document' = (SELECT doc FROM pl_snap WHERE label = 'updated') AS document_ok,
       b->'old_data' = (SELECT doc FROM pl_snap WHERE label = 'created') AS old_data_is_previous_row,
       b->'document'->'note' AS note, b->'document'->'qty' AS qty
  FROM pl_req WHERE n > 2 ORDER BY path;
SELECT path, b->'document'->'total' AS total FROM pl_req WHERE n > 2 AND path LIKE '%_save' ORDER BY path;

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

-- Row text: the document is to_jsonb(row)::text byte for byte, for every
-- kind of column (domains, extremes, special numbers, escapes, odd names,
-- a dropped column, a column added with a default, a type with a cast to
-- json, created while the table is in use).
CREATE DOMAIN pl_posint AS int CHECK (VALUE > 0);
CREATE DOMAIN pl_label AS text;
CREATE TYPE pl_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE pl_text_exact (
    id       bigint PRIMARY KEY,
    gone     text,
    s2       smallint,
    i4       int,
    i8       bigint,
    pos      pl_posint,
    num      numeric,
    numnan   numeric,
    f4       real,
    f8       double precision,
    f8b      double precision,
    d        date,
    ts       timestamp,
    tstz     timestamptz,
    j        jsonb,
    jscalar  jsonb,
    t        text,
    lbl      pl_label,
    vc       varchar(10),
    ch       char(5),
    u        uuid,
    bin      bytea,
    iv       interval,
    tm       time,
    tmtz     timetz,
    ip       inet,
    b        boolean,
    mood     pl_mood,
    "a""b"   text,
    "é"      int,
    "Zz"     int,
    nothing  text
);
ALTER TABLE pl_text_exact DROP COLUMN gone;
SELECT cocohooks.register_hook('pl_text_exact', e, recv_url('/payloads/exact/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'post_delete']) AS e;
CREATE TABLE pl_text_snap (id bigint, label text, doc text, old_doc text);
INSERT INTO pl_text_exact VALUES
  (1, -32768, -2147483648, -9223372036854775808, 1, 'NaN', 'NaN', 'NaN', 'Infinity',
   '-0', 'infinity', '-infinity', 'infinity', '"just a string"', '7',
   E'tab\there "q" \\ \u0001 \u001f \u00e9\U0001F600 nl\n cr\r bs\b ff\f del\u007f', 'lbl', 'v', 'c',
   '00000000-0000-0000-0000-000000000000', '\x', '-1 year 2 mons', '24:00',
   '00:00:01.5+14', '::1', false, 'sad', 'x', 0, 0, NULL),
  (2, 32767, 2147483647, 9223372036854775807, 2147483647,
   '-0.000000000000000000000000000000000000000000001', 'Infinity',
   3.4028235e+38, 1e+20, 1.5e-300, '4713-01-01 BC', '294276-12-31 23:59:59.999999',
   '2024-02-29 23:59:59.123456+05:30',
   '{"b": {"nested": [1, 2.50, null, true, "x\"y"]}, "a": 1e3, "": {}}', 'null',
   '', 'über', '0123456789', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '\xdeadbeef00', '1 day 02:03:04.5', '12:34:56.789', '23:59:59-12', '10.0.0.1/8',
   true, 'happy', 'quote"key', 1, -1, NULL);
INSERT INTO pl_text_snap SELECT id, 'created', to_jsonb(r0)::text, NULL FROM pl_text_exact r0;
ALTER TABLE pl_text_exact ADD COLUMN added int DEFAULT 42;
CREATE TABLE pl_text_before AS SELECT to_jsonb(r0)::text AS doc FROM pl_text_exact r0 WHERE id = 2;
UPDATE pl_text_exact SET i4 = i4 / 2, t = t || '!' WHERE id = 2;
INSERT INTO pl_text_snap SELECT 2, 'updated', to_jsonb(r0)::text, (SELECT doc FROM pl_text_before)
  FROM pl_text_exact r0 WHERE id = 2;
-- a cast to json, created while the table's plan is cached: enums now go through it
CREATE FUNCTION pl_mood_json(pl_mood) RETURNS json LANGUAGE sql IMMUTABLE
  AS $$ SELECT json_build_object('mood', $1::text) $$;
CREATE CAST (pl_mood AS json) WITH FUNCTION pl_mood_json(pl_mood);
INSERT INTO pl_text_exact (id, mood) VALUES (3, 'ok');
INSERT INTO pl_text_snap SELECT id, 'cast', to_jsonb(r0)::text, NULL FROM pl_text_exact r0 WHERE id = 3;
DROP CAST (pl_mood AS json);
INSERT INTO pl_text_exact (id, mood) VALUES (4, 'ok');
INSERT INTO pl_text_snap SELECT id, 'uncast', to_jsonb(r0)::text, NULL FROM pl_text_exact r0 WHERE id = 4;
CREATE TABLE pl_text_deleted AS SELECT to_jsonb(r0)::text AS doc FROM pl_text_exact r0 WHERE id = 1;
DELETE FROM pl_text_exact WHERE id = 1;
SELECT cocohooks.wait_for_deliveries('20 s');
-- the expected body of each event, built from the snapshots' text
CREATE VIEW pl_text_expected AS
  SELECT s.label, e.event,
         CASE e.event
           WHEN 'pre_save' THEN format('{"event": "pre_save", "collection": "pl_text_exact", "operation": %s, "document": %s%s}',
                                       CASE WHEN s.old_doc IS NULL THEN '"create"' ELSE '"update"' END, s.doc,
                                       CASE WHEN s.old_doc IS NULL THEN '' ELSE ', "old_data": ' || s.old_doc END)
           WHEN 'post_save' THEN format('{"event": "post_save", "collection": "pl_text_exact", "operation": %s, "document": %s, "document_id": "%s"%s}',
                                        CASE WHEN s.old_doc IS NULL THEN '"create"' ELSE '"update"' END, s.doc, s.id,
                                        CASE WHEN s.old_doc IS NULL THEN '' ELSE ', "old_data": ' || s.old_doc END)
         END AS body
    FROM pl_text_snap s, unnest(ARRAY['pre_save', 'post_save']) e(event);
-- every save body is one of the expected ones, and each expected one arrived
SELECT r.path, count(*) AS requests, count(x.label) AS exact_bodies
  FROM pl_req r LEFT JOIN pl_text_expected x
       ON x.event = split_part(r.path, '/', 4) AND x.body = r.body
 WHERE r.path LIKE '/payloads/exact/%save' GROUP BY 1 ORDER BY 1;
SELECT x.label, x.event, EXISTS (SELECT 1 FROM pl_req r WHERE r.body = x.body) AS arrived
  FROM pl_text_expected x ORDER BY 1, 2;
-- the delete carries the row as it was last stored, with the added column's default
SELECT r.body = format('{"event": "post_delete", "collection": "pl_text_exact", "document_id": "1", "document": %s}',
                       (SELECT doc FROM pl_text_deleted)) AS delete_exact,
       (SELECT doc::jsonb->'added' FROM pl_text_deleted) AS added
  FROM pl_req r WHERE r.path = '/payloads/exact/post_delete';
-- the enum with and without the cast
SELECT label, doc::jsonb->'mood' AS mood FROM pl_text_snap WHERE label IN ('cast', 'uncast') ORDER BY 1;
-- arrays (any number of dimensions, nulls, empty, a lower bound other
-- than 1, arrays of a domain and of an enum) and json (keys sorted, the last
-- duplicate kept, numbers as numeric), byte for byte too
CREATE TABLE pl_text_arrays (
    id    int PRIMARY KEY,
    ai    int[],
    at    text[],
    an    numeric[],
    af    float8[],
    ad    date[],
    ats   timestamptz[],
    aj    jsonb[],
    ab    boolean[],
    a2    int[][],
    a3    text[][][],
    aempt int[],
    alow  int[],
    adom  pl_posint[],
    amood pl_mood[],
    ajs   json[],
    js    json,
    jsn   json,
    ai2   int2vector
);
SELECT cocohooks.register_hook('pl_text_arrays', 'post_save', recv_url('/payloads/arrays')) > 0 AS registered;
INSERT INTO pl_text_arrays VALUES
  (1, '{1,NULL,-3}', E'{"a b","c\\"d",NULL,"",é}', '{1.50,NaN,-Infinity}',
   '{1e+20,-0,NaN,Infinity,1.5e-300}', '{2024-02-29,infinity}',
   '{"2024-02-29 23:59:59.123456+05:30",NULL}',
   ARRAY['{"b": 1, "a": [1, 2.50]}'::jsonb, 'null', '"s"', NULL],
   '{t,f,NULL}', '{{1,2},{3,NULL}}', '{{{a,b}},{{c,d}}}', '{}', '[2:3]={5,6}', '{1,2}',
   '{sad,happy}', ARRAY['{"k":  1, "k": 2}'::json, '[1, 2]', '"x"'],
   '{"z": 1e3, "a": {"b": [true, null]}, "a": 2, "": 0}', '3.10', '1 2 3'),
  (2, NULL, '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, 'null', '"just text"', NULL);
-- a composite column sends the table through to_jsonb; its bodies must match as well
CREATE TYPE pl_pair AS (a int, b text);
CREATE TABLE pl_text_composite (id int PRIMARY KEY, p pl_pair, ps pl_pair[]);
SELECT cocohooks.register_hook('pl_text_composite', 'post_save', recv_url('/payloads/composite')) > 0 AS registered;
INSERT INTO pl_text_composite VALUES (1, ROW(1, 'x"y'), ARRAY[ROW(2, NULL)::pl_pair]);
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT r.path, r.body = format('{"event": "post_save", "collection": "%s", "operation": "create", "document": %s, "document_id": "%s"}',
                               t.collection, t.doc, t.id) AS exact_body
  FROM pl_req r
  JOIN (SELECT 'pl_text_arrays' AS collection, id, to_jsonb(x)::text AS doc FROM pl_text_arrays x
        UNION ALL
        SELECT 'pl_text_composite', id, to_jsonb(x)::text FROM pl_text_composite x) t
    ON r.b->>'collection' = t.collection AND r.b->>'document_id' = t.id::text
 WHERE r.path IN ('/payloads/arrays', '/payloads/composite')
 ORDER BY 1, t.id;
SELECT b->'document'->'a2' AS a2, b->'document'->'alow' AS alow, b->'document'->'aempt' AS aempt,
       b->'document'->'ajs' AS ajs, b->'document'->'js' AS js, b->'document'->'ai2' AS ai2
  FROM pl_req WHERE path = '/payloads/arrays' ORDER BY b->>'document_id';
-- and the earlier table with arrays and json
SELECT r.path, r.body = format('{"event": "post_save", "collection": "pl_types", "operation": "create", "document": %s, "document_id": "1"}',
                               (SELECT to_jsonb(pt)::text FROM pl_types pt)) AS exact_body
  FROM pl_req r WHERE r.path = '/payloads/types/post_save';

RESET cocohooks.api_session;

-- a stored generated column added after the hook: ALTER TABLE moves the
-- table's pre_save events to the AFTER trigger, and dropping it moves them back
CREATE TABLE pl_gen (id int PRIMARY KEY, a int);
SELECT cocohooks.register_hook('pl_gen', 'pre_save', recv_url('/payloads/gen/pre_save')) > 0 AS registered;
CREATE VIEW pl_gen_triggers AS
  SELECT tgname, CASE WHEN tgtype & 2 <> 0 THEN 'BEFORE' ELSE 'AFTER' END AS timing,
         tgtype & 4 <> 0 AS on_insert, tgtype & 16 <> 0 AS on_update
    FROM pg_trigger WHERE tgrelid = 'pl_gen'::regclass ORDER BY tgname;
SELECT * FROM pl_gen_triggers;
ALTER TABLE pl_gen ADD COLUMN twice int GENERATED ALWAYS AS (a * 2) STORED;
SELECT * FROM pl_gen_triggers;
SET cocohooks.api_session = on;
INSERT INTO pl_gen VALUES (1, 5);
UPDATE pl_gen SET a = 6;
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->>'operation' AS operation, b->'document' AS document, b->'old_data' AS old_data
  FROM pl_req WHERE path = '/payloads/gen/pre_save' ORDER BY n;
ALTER TABLE pl_gen DROP COLUMN twice;
SELECT * FROM pl_gen_triggers;
DROP VIEW pl_gen_triggers;
DROP TABLE pl_gen;

SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS payload_requests FROM pl_req;
SELECT count(*) AS failures_logged FROM cocohooks.deliveries WHERE collection LIKE 'pl_%';

DROP VIEW pl_text_expected;
DROP TABLE pl_items, pl_text, pl_uuid, pl_big, pl_parted, pl_parted_high, pl_copy,
           pl_upsert, pl_types, pl_snap, pl_text_exact, pl_text_snap,
           pl_text_before, pl_text_deleted, pl_text_arrays, pl_text_composite;
DROP FUNCTION pl_modify(), pl_mood_json(pl_mood);
DROP TYPE pl_mood, pl_pair;
DROP DOMAIN pl_posint, pl_label;
DROP VIEW pl_req;
SELECT count(*) FROM cocohooks.hooks;
