-- Row filters (filter), docs/guarantees.md §14.  Receiver paths begin with /rf/.

CREATE VIEW rf_req AS
  SELECT n, path, body::jsonb AS b
    FROM recv('/rf/');

CREATE TABLE rf_posts (
    id     int PRIMARY KEY,
    title  text,
    status text,
    n      int,
    d      int
);

-- the product page's example: notify when status changes to published
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/published'),
         filter => 'NEW.status = ''published'' AND OLD.status IS DISTINCT FROM ''published''') > 0
       AS publish_hook;
-- a hook on every event, each with its own filter
SELECT cocohooks.register_hook('rf_posts', 'pre_save', recv_url('/rf/pre-save-big'),
         filter => 'NEW.n > 10') > 0 AS pre_save_hook;
SELECT cocohooks.register_hook('rf_posts', 'pre_delete', recv_url('/rf/pre-delete-draft'),
         filter => 'OLD.status = ''draft''') > 0 AS pre_delete_hook;
SELECT cocohooks.register_hook('rf_posts', 'post_delete', recv_url('/rf/post-delete-published'),
         filter => 'old.status = ''published''') > 0 AS post_delete_hook;
-- combined with columns: both must pass
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/title-of-published'),
         columns => ARRAY['title'], filter => 'NEW.status = ''published''') > 0 AS both_hook;
-- no filter (NULL, the default): every save
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/all'), filter => NULL) > 0 AS plain_hook;

-- stored as normalized text (what a dump keeps) and as a tree
SELECT event, filter, filter_tree IS NOT NULL AS compiled, filter_tree LIKE '{OPEXPR%' OR filter_tree LIKE '{BOOLEXPR%' AS is_node_tree
  FROM cocohooks.hooks WHERE collection = 'rf_posts'::regclass ORDER BY id;

SET cocohooks.api_session = on;
INSERT INTO rf_posts VALUES (1, 'One', 'draft', 1, 1);          -- draft: no publish
UPDATE rf_posts SET status = 'published' WHERE id = 1;           -- draft -> published: fires
UPDATE rf_posts SET title = 'One, again' WHERE id = 1;           -- published -> published: no
UPDATE rf_posts SET status = 'draft' WHERE id = 1;               -- published -> draft: no
INSERT INTO rf_posts VALUES (2, 'Two', 'published', 20, 1);      -- created published: fires
UPDATE rf_posts SET n = 5 WHERE id = 2;                          -- pre_save: 5 is not > 10
UPDATE rf_posts SET n = NULL WHERE id = 2;                       -- NULL does not pass
UPDATE rf_posts SET title = 'Two, again' WHERE id = 2;           -- title of a published post
DELETE FROM rf_posts WHERE id = 1;                               -- a draft
DELETE FROM rf_posts WHERE id = 2;                               -- a published post
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');

SELECT path, b->>'operation' AS operation, b->'document'->>'title' AS title,
       b->'document'->>'status' AS status, b->'document'->>'n' AS doc_n
  FROM rf_req ORDER BY path, b->'document'->>'id', n;

-- a filter that fails on some rows never fails the write: the hook fires
-- for that row and a WARNING names it
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/ratio'),
         filter => 'NEW.n / NEW.d > 1') > 0 AS ratio_hook;
SET cocohooks.api_session = on;
INSERT INTO rf_posts VALUES (10, 'ratio 2', 'x', 4, 2);   -- passes
INSERT INTO rf_posts VALUES (11, 'ratio 0', 'x', 0, 2);   -- does not
INSERT INTO rf_posts VALUES (12, 'by zero', 'x', 1, 0);   -- division by zero: fires, WARNING
INSERT INTO rf_posts SELECT i, 'bulk', 'x', i, i % 2 FROM generate_series(13, 16) i;  -- two by zero
RESET cocohooks.api_session;
SELECT count(*) AS rows_written FROM rf_posts WHERE id >= 10;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'id' AS id, b->'document'->>'d' AS d
  FROM rf_req WHERE path = '/rf/ratio' ORDER BY (b->'document'->>'id')::int;

-- alter_hook: another filter for the same hook, then none
SELECT id AS ratio_id FROM cocohooks.hooks WHERE url = recv_url('/rf/ratio') \gset
-- hook_stats counts the rows its filter failed on: 12, 14 and 16
SELECT filter_errors, delivered FROM cocohooks.hook_stats WHERE hook_id = :ratio_id;
SELECT cocohooks.alter_hook(:ratio_id, filter => 'NEW.n / 0');   -- checked as register_hook checks it
SELECT cocohooks.alter_hook(:ratio_id, filter => 'NEW.n >= 100 AND NEW.title <> ''skip''') AS altered;
SELECT filter, filter_tree IS NOT NULL AS compiled FROM cocohooks.hooks WHERE id = :ratio_id;
SET cocohooks.api_session = on;
INSERT INTO rf_posts VALUES (20, 'small', 'x', 50, 1), (21, 'big', 'x', 150, 1), (22, 'skip', 'x', 150, 1);
RESET cocohooks.api_session;
SELECT cocohooks.alter_hook(:ratio_id, clear => '{filter}') AS cleared;
SELECT filter IS NULL AS no_filter, filter_tree IS NULL AS no_tree FROM cocohooks.hooks WHERE id = :ratio_id;
SET cocohooks.api_session = on;
INSERT INTO rf_posts VALUES (23, 'small again', 'x', 50, 1);
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'id' AS id, b->'document'->>'title' AS title
  FROM rf_req WHERE path = '/rf/ratio' AND (b->'document'->>'id')::int >= 20
 ORDER BY (b->'document'->>'id')::int;

-- a filter that calls a function that is not built in runs in a
-- subtransaction: its failure is caught the same way
CREATE FUNCTION rf_strict_positive(v int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v < 0 THEN
        RAISE EXCEPTION 'negative value %', v;
    END IF;
    RETURN v > 0;
END
$$;
CREATE TABLE rf_plain (id int PRIMARY KEY, v int);
SELECT cocohooks.register_hook('rf_plain', 'post_save', recv_url('/rf/plpgsql'),
         filter => 'rf_strict_positive(NEW.v)') > 0 AS plpgsql_hook;
SELECT filter FROM cocohooks.hooks WHERE collection = 'rf_plain'::regclass;
SET cocohooks.api_session = on;
INSERT INTO rf_plain VALUES (1, 1), (2, 0), (3, -1), (4, 2);
BEGIN;
INSERT INTO rf_plain VALUES (5, -5);
INSERT INTO rf_plain VALUES (6, 6);
COMMIT;
RESET cocohooks.api_session;
SELECT count(*) AS rows_written FROM rf_plain;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'id' AS id, b->'document'->>'v' AS v
  FROM rf_req WHERE path = '/rf/plpgsql' ORDER BY (b->'document'->>'id')::int;
-- the function is dropped: every row fires, with a WARNING
DROP FUNCTION rf_strict_positive(int);
SET cocohooks.api_session = on;
INSERT INTO rf_plain VALUES (7, 0);
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'id' AS id FROM rf_req WHERE path = '/rf/plpgsql' AND b->'document'->>'id' = '7';
DROP TABLE rf_plain;
-- a column the filter uses is dropped: every row fires, with a WARNING
CREATE TABLE rf_drop (id int PRIMARY KEY, a int, b int);
SELECT cocohooks.register_hook('rf_drop', 'post_save', recv_url('/rf/dropped-column'),
         filter => 'NEW.b > 0') > 0 AS drop_hook;
ALTER TABLE rf_drop DROP COLUMN b;
SET cocohooks.api_session = on;
INSERT INTO rf_drop VALUES (1, 1);
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document' AS document FROM rf_req WHERE path = '/rf/dropped-column';
DROP TABLE rf_drop;

-- RENAME COLUMN: the tree follows by itself, the text is written again
CREATE TABLE rf_users (id int PRIMARY KEY, plan text, email text) PARTITION BY RANGE (id);
CREATE TABLE rf_users_1 (email text, filler int, id int NOT NULL, plan text);
ALTER TABLE rf_users_1 DROP COLUMN filler;     -- its columns are numbered differently
ALTER TABLE rf_users ATTACH PARTITION rf_users_1 FOR VALUES FROM (1) TO (100);
SELECT cocohooks.register_hook('rf_users', 'post_save', recv_url('/rf/upgraded'),
         filter => 'NEW.plan = ''pro'' AND OLD.plan IS DISTINCT FROM NEW.plan') > 0 AS upgrade_hook;
ALTER TABLE rf_users RENAME COLUMN plan TO tier;
SELECT filter FROM cocohooks.hooks WHERE collection = 'rf_users'::regclass;
BEGIN;   -- a rename rolled back leaves the text as it was
ALTER TABLE rf_users RENAME COLUMN tier TO level;
ROLLBACK;
SELECT filter FROM cocohooks.hooks WHERE collection = 'rf_users'::regclass;
SET cocohooks.api_session = on;
INSERT INTO rf_users VALUES (1, 'free', 'a@example.com');
UPDATE rf_users SET tier = 'pro' WHERE id = 1;                  -- fires
UPDATE rf_users SET email = 'b@example.com' WHERE id = 1;       -- still pro: no
INSERT INTO rf_users VALUES (2, 'pro', 'c@example.com');        -- created pro: fires
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'id' AS id, b->'document'->>'tier' AS tier, b->'document'->>'email' AS email
  FROM rf_req WHERE path = '/rf/upgraded' ORDER BY b->'document'->>'id', n;
DROP TABLE rf_users;

-- a filter the catalog's trigger cannot compile (a restore into a database
-- without the function it calls) keeps the hook, disabled, with the reason
INSERT INTO cocohooks.hooks (collection, event, url, filter)
  VALUES ('rf_posts', 'post_save', recv_url('/rf/x'), 'public.no_such_function(new.n)')
  RETURNING enabled, disabled_reason, filter_tree IS NULL AS no_tree;
-- enabled by hand as it is, it fires on every row, with a WARNING
SELECT cocohooks.enable_hook(id) FROM cocohooks.hooks WHERE url = recv_url('/rf/x');
SET cocohooks.api_session = on;
INSERT INTO rf_posts VALUES (30, 'uncompiled', 'x', 1, 1);
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT b->'document'->>'title' AS title FROM rf_req WHERE path = '/rf/x';
DELETE FROM cocohooks.hooks WHERE url = recv_url('/rf/x');

-- bad filters: an ERROR that names the problem, nothing registered
SELECT count(*) AS hooks_before FROM cocohooks.hooks WHERE collection = 'rf_posts'::regclass;
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW.status = ');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'status = ''x''');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW.nope = 1');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'rf_posts.status = ''x''');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW.n');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW.n IN (SELECT 1)');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'EXISTS (SELECT 1 FROM rf_posts)');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'count(NEW.n) > 1');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'row_number() OVER () > 1');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'generate_series(1, NEW.n) > 1');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'random() < 0.5');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW IS NOT NULL');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'NEW.ctid IS NOT NULL');
SELECT cocohooks.register_hook('rf_posts', 'post_delete', recv_url('/rf/x'), filter => 'NEW.status = ''x''');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'true FROM rf_posts');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'true, false');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'true; DROP TABLE rf_posts');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => 'true AS x');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => '$1 = 1');
SELECT cocohooks.register_hook('rf_posts', 'post_save', recv_url('/rf/x'), filter => '');
SELECT count(*) AS hooks_after FROM cocohooks.hooks WHERE collection = 'rf_posts'::regclass;

DROP TABLE rf_posts;
DROP VIEW rf_req;
