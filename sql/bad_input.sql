-- Every wrong argument gets an ERROR that names the argument and what is
-- allowed, and changes nothing (docs/guarantees.md §6).
\set VERBOSITY default

CREATE TABLE bi_t (id int PRIMARY KEY, v text);
CREATE TABLE bi_empty (id int PRIMARY KEY);
CREATE VIEW bi_view AS SELECT * FROM bi_t;
CREATE MATERIALIZED VIEW bi_matview AS SELECT * FROM bi_t;
CREATE SEQUENCE bi_seq;
CREATE INDEX bi_index ON bi_t (v);
CREATE TYPE bi_type AS (a int);
CREATE TABLE bi_nopk (id int, v text);
CREATE TABLE bi_unique_only (id int UNIQUE NOT NULL);
CREATE TABLE bi_composite (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE bi_expr_unique (id int);

SELECT cocohooks.register_hook('bi_t', 'post_save', recv_url('/bad_input/ok')) AS ok_hook \gset

-- What must not change: the catalog and every cocohooks trigger.
CREATE TABLE bi_baseline AS
  SELECT (SELECT count(*) FROM cocohooks.hooks) AS hooks,
         (SELECT string_agg(row(h.*)::text, ';' ORDER BY h.id) FROM cocohooks.hooks h) AS hook_rows,
         (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'cocohooks.row_trigger'::regproc) AS triggers,
         (SELECT string_agg(tgrelid::regclass::text || ':' || tgtype, ';' ORDER BY tgrelid, tgtype)
            FROM pg_trigger WHERE tgfoid = 'cocohooks.row_trigger'::regproc) AS trigger_defs;
SELECT hooks, triggers FROM bi_baseline;
CREATE FUNCTION bi_unchanged() RETURNS boolean LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM cocohooks.hooks) = b.hooks
     AND (SELECT string_agg(row(h.*)::text, ';' ORDER BY h.id) FROM cocohooks.hooks h) = b.hook_rows
     AND (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'cocohooks.row_trigger'::regproc) = b.triggers
     AND (SELECT string_agg(tgrelid::regclass::text || ':' || tgtype, ';' ORDER BY tgrelid, tgtype)
            FROM pg_trigger WHERE tgfoid = 'cocohooks.row_trigger'::regproc) = b.trigger_defs
    FROM bi_baseline b
$$;
SELECT bi_unchanged();

-- event
SELECT cocohooks.register_hook('bi_t', 'on_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'PRE_SAVE', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', '', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_empty', 'save', 'http://127.0.0.1/x');
SELECT bi_unchanged();

-- collection: not a table
SELECT cocohooks.register_hook('bi_view', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_matview', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_seq', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_index', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_type', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook(0, 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();

-- collection: no single-column primary key
SELECT cocohooks.register_hook('bi_nopk', 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_unique_only', 'pre_delete', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_composite', 'post_delete', 'http://127.0.0.1/x');
SELECT bi_unchanged();

-- url
SELECT cocohooks.register_hook('bi_t', 'post_save', 'ftp://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'file:///etc/passwd');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'gopher://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', '127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/a b');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', ' http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', E'http://127.0.0.1/a\tb');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', E'http://127.0.0.1/x\r\nHost: evil');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', E'http://127.0.0.1/\x01');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', E'http://127.0.0.1/\x7f');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', '');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://');
SELECT bi_unchanged();

-- headers
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '[]');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '[{"X-A": "1"}]');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '"X-A: 1"');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '1');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', 'null');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": 1}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": true}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": null}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": ["a"]}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": {"b": "c"}}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": "ok", "X-B": "a\r\nX-Injected: 1"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": "a\nb"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A": "a\rb"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"Bad Name": "x"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X-A:": "x"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"": "x"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"X\nY": "x"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"Content-Type": "text/plain"}');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{"webhook-signature": "v1,forged"}');
SELECT bi_unchanged();

-- secret
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', 'c2VjcmV0');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', 'WHSEC_c2VjcmV0');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', 'whsec_');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', 'whsec_not base64!');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', 'whsec_@@@@');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}', '');
SELECT bi_unchanged();
-- a key of 257 bytes is one too many
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', '{}',
       'whsec_' || translate(encode(decode(repeat('a5', 257), 'hex'), 'base64'), E'\n', ''));
SELECT bi_unchanged();

-- timeout_ms: 1 .. 15000
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', timeout_ms => 0);
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', timeout_ms => 15001);
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', timeout_ms => -5);
SELECT bi_unchanged();

-- max_retries: 0 .. 20
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', max_retries => -1);
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', max_retries => 21);
SELECT bi_unchanged();

-- NULLs (secret NULL is allowed: unsigned)
SELECT cocohooks.register_hook(NULL, 'post_save', 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', NULL, 'http://127.0.0.1/x');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', NULL);
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', NULL);
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', timeout_ms => NULL);
SELECT bi_unchanged();
-- max_retries NULL is no limit on the count (0.3.0); retry_for must be positive
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', retry_for => '0 s');
SELECT bi_unchanged();
SELECT cocohooks.register_hook('bi_t', 'post_save', 'http://127.0.0.1/x', retry_for => '-1 day');
SELECT bi_unchanged();
SELECT cocohooks.unregister_hook(NULL);
SELECT cocohooks.enable_hook(NULL);
SELECT cocohooks.disable_hook(NULL);
SELECT bi_unchanged();
SELECT cocohooks.wait_for_deliveries(NULL);
SELECT cocohooks.wait_for_deliveries('-1 second');
SELECT bi_unchanged();

-- alter_hook: each value checked as register_hook checks it (the hints say
-- how to ask for none here: clear), clear's own errors, NULL hook_id
SELECT cocohooks.alter_hook(:ok_hook, timeout_ms => 0);
SELECT cocohooks.alter_hook(:ok_hook, secret => 'whsec_');
SELECT cocohooks.alter_hook(:ok_hook, retry_for => '0 s');
SELECT cocohooks.alter_hook(:ok_hook, columns => '{}');
SELECT cocohooks.alter_hook(:ok_hook, filter => 'v = 1');
SELECT cocohooks.alter_hook(:ok_hook, max_retries => 3, clear => '{max_retries}');
SELECT cocohooks.alter_hook(:ok_hook, clear => '{headers}');
SELECT cocohooks.alter_hook(:ok_hook, clear => '{nope}');
SELECT cocohooks.alter_hook(:ok_hook, clear => '{secret,NULL}');
SELECT cocohooks.alter_hook(:ok_hook, clear => '{{secret}}');
SELECT cocohooks.alter_hook(NULL, timeout_ms => 5);
SELECT bi_unchanged();
-- redeliver_failed: NULLs, a range backwards, an unknown hook
SELECT cocohooks.redeliver_failed(NULL, now());
SELECT cocohooks.redeliver_failed(:ok_hook, NULL);
SELECT cocohooks.redeliver_failed(:ok_hook, '2025-01-02 10:00+00', NULL);
SELECT cocohooks.redeliver_failed(:ok_hook, '2025-01-02 10:00+00', '2025-01-02 09:00+00');
SELECT cocohooks.redeliver_failed(-1, '2025-01-02 09:00+00', '2025-01-02 10:00+00');
SELECT bi_unchanged();

-- the first bad argument is reported even when a later one is bad too, and a
-- failed call inside a transaction leaves it aborted, not half-done
BEGIN;
SELECT cocohooks.register_hook('bi_empty', 'post_save', recv_url('/bad_input/in-tx')) IS NOT NULL AS registered;
SELECT cocohooks.register_hook('bi_empty', 'post_save', 'ftp://x', timeout_ms => 0);
ROLLBACK;
SELECT bi_unchanged();

-- the limits themselves are accepted
SELECT cocohooks.register_hook('bi_empty', 'post_save', 'HTTPS://127.0.0.1/x', '{"X-Ok": "", "x_ok-2.~!#$%&''*+^`|": "v a l u e"}',
         'whsec_' || encode('k', 'base64'), 1, 20) AS h_low \gset
SELECT cocohooks.register_hook('bi_empty', 'pre_save', 'http://127.0.0.1/x', '{}', NULL, 15000, 0) AS h_high \gset
SELECT event, url, headers, secret, timeout_ms, max_retries FROM cocohooks.hooks
 WHERE id IN (:h_low, :h_high) ORDER BY id;
SELECT cocohooks.unregister_hook(:h_low), cocohooks.unregister_hook(:h_high);
SELECT bi_unchanged();

-- no request was ever made for this file's bad hooks
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) FROM recv('/bad_input/');

DROP TABLE bi_t, bi_empty, bi_nopk, bi_unique_only, bi_composite, bi_expr_unique, bi_baseline CASCADE;
DROP SEQUENCE bi_seq;
DROP TYPE bi_type;
DROP FUNCTION bi_unchanged();
SELECT count(*) FROM cocohooks.hooks;
