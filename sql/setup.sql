-- Installing the extension, and what it creates.
CREATE EXTENSION cocohooks;
SELECT current_setting('cocohooks.max_databases')::int > 1 AS serves_several_databases;
-- the extension as installed (\dx prints other columns on other versions)
SELECT e.extname, e.extversion, e.extnamespace::regnamespace AS schema,
       obj_description(e.oid, 'pg_extension') AS description
  FROM pg_extension e WHERE e.extname = 'cocohooks';
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'cocohooks' ORDER BY 1, 2;

-- relations of schema cocohooks
SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'cocohooks' ORDER BY 1;

-- the catalog, the delivery log and the stats view have the documented columns
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.oid IN ('cocohooks.hooks'::regclass, 'cocohooks.deliveries'::regclass,
                 'cocohooks.stats'::regclass)
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;

-- one row of counters
SELECT count(*) AS rows FROM cocohooks.stats;
SELECT queued >= 0 AS queued_ok, delivered >= 0 AS delivered_ok,
       failed >= 0 AS failed_ok, retried >= 0 AS retried_ok,
       dropped = 0 AS nothing_dropped, in_flight >= 0 AS in_flight_ok,
       queue_bytes_used >= 0 AS used_ok, queue_bytes_total > 0 AS has_queue
  FROM cocohooks.stats;

-- the catalog starts empty
SELECT count(*) FROM cocohooks.hooks;
SELECT count(*) FROM cocohooks.deliveries;

-- the DROP TABLE event trigger
SELECT evtname, evtevent, evtenabled FROM pg_event_trigger
 WHERE evtname LIKE 'cocohooks%' ORDER BY 1;

-- wait_for_deliveries with nothing queued returns at once
SELECT cocohooks.wait_for_deliveries();
SELECT cocohooks.wait_for_deliveries('1 s');

-- CREATE EXTENSION works in another database too, which gets its own
-- worker; DROP DATABASE stops that worker and does not wait on it
\set regdb :DBNAME
CREATE DATABASE cocohooks_other;
\c cocohooks_other
CREATE EXTENSION cocohooks;
SELECT count(*) AS cocohooks_installed FROM pg_extension WHERE extname = 'cocohooks';
SELECT cocohooks.wait_for_deliveries('10 s');
\c :regdb
DROP DATABASE cocohooks_other;
SELECT count(*) AS other_database FROM pg_database WHERE datname = 'cocohooks_other';
SELECT extname FROM pg_extension WHERE extname = 'cocohooks';

-- Test helpers shared by the other topics.
-- The receiver's log path is kept in a table so the helpers can read it; it
-- is never printed.
\getenv recv_log RECEIVER_LOG
\getenv recv_port RECEIVER_PORT
SELECT :'recv_log' <> '' AS have_receiver_log, :'recv_port'::int > 0 AS have_receiver_port;
CREATE TABLE public.test_env (recv_log text NOT NULL, recv_port int NOT NULL);
INSERT INTO public.test_env VALUES (:'recv_log', :'recv_port');
GRANT SELECT ON public.test_env TO PUBLIC;

-- Every request the receiver recorded whose path starts with prefix, in the
-- order received (the last line may be partial if a request is arriving: it
-- is skipped).
CREATE FUNCTION public.recv(prefix text)
RETURNS TABLE (n int, method text, path text, headers jsonb, body text,
               received_at double precision)
LANGUAGE sql AS $$
  WITH lines AS (
    SELECT l, ord::int AS ord
      FROM unnest(string_to_array(pg_read_file((SELECT recv_log FROM public.test_env)), E'\n'))
           WITH ORDINALITY AS t(l, ord)
  ), full_lines AS (
    SELECT l::jsonb AS j, ord FROM lines
     WHERE ord < (SELECT max(ord) FROM lines)
  )
  SELECT row_number() OVER (ORDER BY ord)::int, j->>'method', j->>'path',
         j->'headers', j->>'body', (j->>'received_at')::double precision
    FROM full_lines
   WHERE starts_with(j->>'path', prefix)
   ORDER BY ord
$$;

-- The URL of a path on the receiver.
CREATE FUNCTION public.recv_url(path text) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT 'http://127.0.0.1:' || recv_port || path FROM public.test_env
$$;

-- The keys of a JSON object text, in the order they appear.
CREATE FUNCTION public.json_keys(body text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(k, ',' ORDER BY o)
    FROM json_object_keys(body::json) WITH ORDINALITY AS t(k, o)
$$;

SELECT count(*) AS nothing_received_yet FROM public.recv('/');
