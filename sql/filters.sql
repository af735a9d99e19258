-- Hooks filtered by column (columns) and payloads without some columns
-- (exclude_columns), docs/guarantees.md §9.  Receiver paths begin with /filters/.

CREATE VIEW fl_req AS
  SELECT n, path, body::jsonb AS b
    FROM recv('/filters/');

CREATE TABLE fl_posts (
    id       int PRIMARY KEY,
    title    text,
    status   text,
    password text,
    secret   bytea,
    n        numeric
);

-- register_hook's signature: three arguments after max_retries
SELECT pg_get_function_arguments('cocohooks.register_hook'::regproc);

SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/status'),
         columns => ARRAY['status', 'n']) > 0 AS status_hook;
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/all')) > 0 AS all_hook;
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/nosecrets'),
         exclude_columns => ARRAY['password', 'secret']) > 0 AS excluding_hook;
SELECT cocohooks.register_hook('fl_posts', 'pre_save', recv_url('/filters/pre-nosecrets'),
         columns => ARRAY['title'], exclude_columns => ARRAY['secret', 'password'],
         ordering => 'none') > 0 AS pre_hook;
SELECT cocohooks.register_hook('fl_posts', 'post_delete', recv_url('/filters/deleted'),
         columns => ARRAY['status'], exclude_columns => ARRAY['password']) > 0 AS delete_hook;

SELECT event, columns, exclude_columns, ordering
  FROM cocohooks.hooks WHERE collection = 'fl_posts'::regclass ORDER BY id;

SET cocohooks.api_session = on;
INSERT INTO fl_posts VALUES (1, 'Hello', 'draft', 'hash-1', '\x01', 1.0);
UPDATE fl_posts SET title = 'Hello, world' WHERE id = 1;      -- title only
UPDATE fl_posts SET status = 'published' WHERE id = 1;         -- status
UPDATE fl_posts SET n = 1.00 WHERE id = 1;                     -- equal as numeric: no change
UPDATE fl_posts SET status = NULL WHERE id = 1;                -- to NULL: a change
UPDATE fl_posts SET status = NULL WHERE id = 1;                -- NULL to NULL: none
UPDATE fl_posts SET password = 'hash-2' WHERE id = 1;          -- an excluded column
DELETE FROM fl_posts WHERE id = 1;
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');

-- which hook got what: creates always fire, updates only on a listed change
SELECT path, b->>'operation' AS operation, b->'document'->>'title' AS title,
       b->'document'->>'status' AS status
  FROM fl_req ORDER BY path, operation, title, status NULLS FIRST;

-- excluded keys are absent from document and old_data, the rest is the row
-- as to_jsonb renders it without them
SELECT path, b->>'operation' AS operation,
       b->'document' ? 'password' AS doc_password, b->'document' ? 'secret' AS doc_secret,
       b->'old_data' ? 'password' AS old_password, b->'old_data' ? 'secret' AS old_secret,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(b->'document') k) AS doc_keys
  FROM fl_req WHERE path IN ('/filters/nosecrets', '/filters/pre-nosecrets', '/filters/deleted')
 ORDER BY path, operation, b->'document'->>'title', b->'document'->>'status' NULLS FIRST;
-- byte for byte: the body's document text is to_jsonb's without those keys
SELECT r.body_doc, r.body_doc = e.expected AS same_text
  FROM (SELECT substring(body from '"document": (\{[^{}]*\})') AS body_doc
          FROM recv('/filters/nosecrets') WHERE body LIKE '%"operation": "create"%') r,
       LATERAL (SELECT (to_jsonb(p) - 'password' - 'secret')::text AS expected
                  FROM (VALUES (1, 'Hello'::text, 'draft'::text, 'hash-1'::text, '\x01'::bytea, 1.0::numeric))
                       AS p(id, title, status, password, secret, n)) e;

-- a table whose rows go through to_jsonb itself (a composite column)
CREATE TYPE fl_pair AS (a int, b text);
CREATE TABLE fl_comp (id int PRIMARY KEY, pair fl_pair, password text, note text);
SELECT cocohooks.register_hook('fl_comp', 'post_save', recv_url('/filters/comp'),
         exclude_columns => ARRAY['password']) > 0 AS comp_hook;
SET cocohooks.api_session = on;
INSERT INTO fl_comp VALUES (1, ROW(1, 'x'), 'hash', 'kept');
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT substring(body from '"document": (\{.*\}), "document_id"') AS document,
       substring(body from '"document": (\{.*\}), "document_id"') =
       (SELECT (to_jsonb(c) - 'password')::text FROM fl_comp c) AS as_to_jsonb_without_it
  FROM recv('/filters/comp');
DROP TABLE fl_comp;
DROP TYPE fl_pair;

-- RENAME COLUMN: the hooks follow the new names, so a column left out of
-- payloads stays out, and a filter keeps matching (on a partitioned table
-- too, whose partitions' columns are renamed with it)
CREATE TABLE fl_users (id int PRIMARY KEY, email text, pw text, plan text) PARTITION BY RANGE (id);
CREATE TABLE fl_users_1 PARTITION OF fl_users FOR VALUES FROM (1) TO (100);
SELECT cocohooks.register_hook('fl_users', 'post_save', recv_url('/filters/renamed'),
         columns => ARRAY['plan', 'email'], exclude_columns => ARRAY['pw']) > 0 AS renamed_hook;
SELECT cocohooks.register_hook('fl_users', 'post_save', recv_url('/filters/renamed-all')) > 0 AS plain_hook;
ALTER TABLE fl_users RENAME COLUMN pw TO password_hash;
ALTER TABLE fl_users RENAME COLUMN plan TO tier;
ALTER TABLE fl_users RENAME COLUMN email TO mail;
ALTER TABLE fl_users RENAME COLUMN mail TO email_address;
SELECT columns, exclude_columns FROM cocohooks.hooks WHERE collection = 'fl_users'::regclass ORDER BY id;
BEGIN;   -- a rename rolled back leaves the hooks as they were
ALTER TABLE fl_users RENAME COLUMN tier TO level;
ROLLBACK;
SELECT columns, exclude_columns FROM cocohooks.hooks WHERE collection = 'fl_users'::regclass ORDER BY id;
SET cocohooks.api_session = on;
INSERT INTO fl_users VALUES (1, 'a@example.com', 'hash-a', 'free');
UPDATE fl_users SET tier = 'pro' WHERE id = 1;                     -- a filter column, renamed
UPDATE fl_users SET password_hash = 'hash-b' WHERE id = 1;         -- not a filter column
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, b->>'operation' AS operation, b->'document'->>'tier' AS tier,
       b->'document' ? 'password_hash' AS doc_password_hash,
       coalesce(b->'old_data' ? 'password_hash', false) AS old_password_hash,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(b->'document') k) AS doc_keys
  FROM fl_req WHERE path LIKE '/filters/renamed%' ORDER BY path, n;
DROP TABLE fl_users;

-- bad input: an ERROR that names the argument, nothing registered
SELECT count(*) AS hooks_before FROM cocohooks.hooks WHERE collection = 'fl_posts'::regclass;
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY['nope']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY['title', NULL]);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY['title', 'title']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY[]::text[]);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY['Title']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), exclude_columns => ARRAY['id']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), exclude_columns => ARRAY['nope']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), exclude_columns => ARRAY[NULL]::text[]);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), exclude_columns => ARRAY['password', 'password']);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), ordering => 'sorted');
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), ordering => NULL);
SELECT cocohooks.register_hook('fl_posts', 'post_save', recv_url('/filters/x'), columns => ARRAY[['a'], ['b']]);
SELECT count(*) AS hooks_after FROM cocohooks.hooks WHERE collection = 'fl_posts'::regclass;

DROP TABLE fl_posts;
DROP VIEW fl_req;
