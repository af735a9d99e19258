-- How events are delivered: headers, signatures, failures, the delivery log
-- and the counters (docs/guarantees.md §2, §5).
-- Receiver paths used here contain /delivery/ (the special paths of the
-- receiver, /status/<code>, /slow/<ms>, /redirect and /close, come first).
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE dl_t (id int PRIMARY KEY, v text);
CREATE TABLE dl_stats0 AS SELECT * FROM cocohooks.stats;

-- Headers
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/headers/a'),
         '{"X-Api-Key": "key-a", "Authorization": "Bearer abc", "X-Empty": ""}') AS ha \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/headers/other')) AS ha2 \gset
SELECT cocohooks.register_hook('dl_t', 'pre_save', recv_url('/delivery/headers/b')) AS hb \gset
SELECT cocohooks.register_hook('dl_t', 'pre_delete', recv_url('/delivery/headers/c')) AS hc \gset
SELECT cocohooks.register_hook('dl_t', 'post_delete', recv_url('/delivery/headers/d')) AS hd \gset
SET cocohooks.api_session = on;
INSERT INTO dl_t VALUES (1, 'one'), (2, 'two');
DELETE FROM dl_t WHERE id = 2;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, method, headers->>'content-type' AS content_type,
       headers->>'user-agent' = 'cocohooks/' || (SELECT extversion FROM pg_extension WHERE extname = 'cocohooks') AS user_agent_ok,
       headers->>'user-agent' AS user_agent,
       headers->>'x-hook-event' AS x_hook_event,
       headers->>'x-hook-event' = body::jsonb->>'event' AS matches_body,
       (headers->>'content-length')::int = octet_length(body) AS content_length_ok,
       headers ? 'webhook-signature' AS signed,
       body::jsonb->'document'->>'id' AS id
  FROM recv('/delivery/headers/') ORDER BY path, id;
-- the hook's own headers, only on its own requests
SELECT path, headers->>'x-api-key' AS x_api_key, headers->>'authorization' AS authorization,
       headers->>'x-empty' AS x_empty, headers ? 'x-empty' AS sent_x_empty
  FROM recv('/delivery/headers/') ORDER BY path, body::jsonb->'document'->>'id';
-- webhook-id: present and unique per event and hook (two hooks on one
-- event get two ids); webhook-timestamp: Unix seconds, now
SELECT count(*) AS requests, count(headers->>'webhook-id') AS with_id,
       count(DISTINCT headers->>'webhook-id') AS distinct_ids,
       count(DISTINCT (body::jsonb->>'event', body::jsonb->'document'->>'id')) AS distinct_events,
       bool_and(headers->>'webhook-timestamp' ~ '^[0-9]+$') AS timestamp_is_integer,
       bool_and(abs((headers->>'webhook-timestamp')::numeric - extract(epoch FROM now())) < 60) AS timestamp_is_now,
       bool_and(abs((headers->>'webhook-timestamp')::numeric - received_at::numeric) < 5) AS timestamp_is_send_time
  FROM recv('/delivery/headers/');
SELECT count(*) AS ids_shared_by_two_hooks
  FROM (SELECT headers->>'webhook-id' FROM recv('/delivery/headers/a')
        INTERSECT
        SELECT headers->>'webhook-id' FROM recv('/delivery/headers/other')) x;
-- nothing failed, and successes are not logged by default
SELECT current_setting('cocohooks.log_deliveries') AS log_deliveries;
SELECT count(*) AS logged FROM cocohooks.deliveries WHERE hook_id IN (:ha, :ha2, :hb, :hc, :hd);
SELECT cocohooks.unregister_hook(id) FROM cocohooks.hooks WHERE collection = 'dl_t'::regclass;

-- Signatures: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">
-- keyed with the base64-decoded secret
SELECT 'whsec_' || encode('my signing key, 32 bytes long!!!', 'base64') AS secret \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/signed'), secret => :'secret') AS hs \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/unsigned')) AS hu \gset
INSERT INTO dl_t VALUES (3, 'signed: é ☃ "quotes" \ ');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, headers->>'webhook-signature' LIKE 'v1,%' AS v1,
       headers->>'webhook-signature' =
         'v1,' || encode(hmac(convert_to((headers->>'webhook-id') || '.' || (headers->>'webhook-timestamp') || '.' || body, 'UTF8'),
                              decode(substr(:'secret', 7), 'base64'), 'sha256'), 'base64') AS signature_valid,
       headers->>'webhook-signature' =
         'v1,' || encode(hmac(convert_to((headers->>'webhook-id') || '.' || (headers->>'webhook-timestamp') || '.' || body, 'UTF8'),
                              convert_to('wrong key', 'UTF8'), 'sha256'), 'base64') AS valid_with_wrong_key
  FROM recv('/delivery/signed');
SELECT path, headers ? 'webhook-signature' AS signed FROM recv('/delivery/unsigned');
SELECT cocohooks.unregister_hook(:hs), cocohooks.unregister_hook(:hu);
-- the longest key allowed, 256 bytes, signs as well
SELECT 'whsec_' || translate(encode(decode(repeat('a5', 256), 'hex'), 'base64'), E'\n', '') AS secret256 \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/signed256'), secret => :'secret256') AS hs \gset
INSERT INTO dl_t VALUES (4, 'signed with a 256-byte key');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, length(decode(substr(:'secret256', 7), 'base64')) AS key_bytes,
       headers->>'webhook-signature' =
         'v1,' || encode(hmac(convert_to((headers->>'webhook-id') || '.' || (headers->>'webhook-timestamp') || '.' || body, 'UTF8'),
                              decode(substr(:'secret256', 7), 'base64'), 'sha256'), 'base64') AS signature_valid
  FROM recv('/delivery/signed256');
SELECT cocohooks.unregister_hook(:hs);

-- Failures: each is logged in cocohooks.deliveries, whatever the cause
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/500/delivery/f500'), max_retries => 0) AS h500 \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/404/delivery/f404'), max_retries => 0) AS h404 \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/204/delivery/ok204')) AS h204 \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/299/delivery/ok299')) AS h299 \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/redirect/delivery'), max_retries => 0) AS hredir \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', 'http://127.0.0.1:9/delivery/refused', max_retries => 0) AS hrefused \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/slow/3000/delivery/timeout'), timeout_ms => 300, max_retries => 0) AS hslow \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/close/delivery'), max_retries => 0) AS hclose \gset
INSERT INTO dl_t VALUES (10, 'fails');
SELECT cocohooks.wait_for_deliveries('20 s');
-- the write is never rolled back
SELECT v FROM dl_t WHERE id = 10;
SELECT CASE hook_id WHEN :h500 THEN '500' WHEN :h404 THEN '404' WHEN :h204 THEN '204'
                    WHEN :h299 THEN '299' WHEN :hredir THEN 'redirect'
                    WHEN :hrefused THEN 'refused' WHEN :hslow THEN 'timeout'
                    WHEN :hclose THEN 'close' END AS hook,
       event, collection, document_id, success, status_code,
       error IS NOT NULL AS has_error, attempts,
       duration_ms >= 0 AS duration_ok,
       queued_at <= finished_at AND finished_at <= clock_timestamp()
         AND finished_at > now() - interval '1 minute' AS times_ok
  FROM cocohooks.deliveries
 WHERE hook_id IN (:h500, :h404, :h204, :h299, :hredir, :hrefused, :hslow, :hclose)
 ORDER BY 1;
-- the error texts say what happened
SELECT error ~ '500' AS names_status FROM cocohooks.deliveries WHERE hook_id = :h500;
SELECT error ~* 'time(d)?[ -]?out' AS mentions_timeout, duration_ms < 2500 AS gave_up_early
  FROM cocohooks.deliveries WHERE hook_id = :hslow;
SELECT error ~* 'connect|refused' AS mentions_connection FROM cocohooks.deliveries WHERE hook_id = :hrefused;
-- 2xx answers got their request
SELECT split_part(path, '/', 3) AS status, count(*) FROM recv('/status/2') WHERE path LIKE '%/delivery/%'
 GROUP BY 1 ORDER BY 1;
-- the redirect was not followed: nothing ever asked for /status/200
SELECT count(*) AS redirect_requests FROM recv('/redirect/delivery');
SELECT count(*) AS followed FROM recv('/status/200');
SELECT cocohooks.unregister_hook(id) FROM cocohooks.hooks WHERE collection = 'dl_t'::regclass;

-- Retries: up to max_retries more attempts, with the same webhook-id and a
-- growing back-off; one log row with the number of attempts
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/503/delivery/retry'), max_retries => 2) AS hretry \gset
CREATE TABLE dl_stats1 AS SELECT * FROM cocohooks.stats;
INSERT INTO dl_t VALUES (20, 'retried');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS attempts_received, count(DISTINCT headers->>'webhook-id') AS webhook_ids,
       count(DISTINCT body) AS bodies
  FROM recv('/status/503/delivery/retry');
WITH r AS (SELECT n, received_at - lag(received_at) OVER (ORDER BY n) AS gap
             FROM recv('/status/503/delivery/retry'))
SELECT bool_and(gap > 0) AS waits, (array_agg(gap ORDER BY n))[3] > (array_agg(gap ORDER BY n))[2] AS growing
  FROM r WHERE gap IS NOT NULL OR n = 1;
SELECT success, status_code, attempts, error IS NOT NULL AS has_error
  FROM cocohooks.deliveries WHERE hook_id = :hretry;
SELECT s.retried - s1.retried AS retried, s.failed - s1.failed AS failed,
       s.delivered - s1.delivered AS delivered, s.queued - s1.queued AS queued
  FROM cocohooks.stats s, dl_stats1 s1;
SELECT cocohooks.unregister_hook(:hretry);

-- wait_for_deliveries: false when the timeout passes first
SELECT cocohooks.register_hook('dl_t', 'pre_save', recv_url('/slow/2000/delivery/wait')) AS hwait \gset
INSERT INTO dl_t VALUES (30, 'slow');
SELECT cocohooks.wait_for_deliveries('100 ms') AS done_in_100ms;
SELECT in_flight > 0 OR queue_bytes_used > 0 AS busy FROM cocohooks.stats;
SELECT cocohooks.wait_for_deliveries('20 s') AS done;
SELECT count(*) FROM recv('/slow/2000/delivery/wait');
SELECT cocohooks.wait_for_deliveries('0 s') AS idle_zero_timeout;
SELECT cocohooks.unregister_hook(:hwait);

-- Counters: one event for two hooks, one success and one failure
CREATE TABLE dl_stats2 AS SELECT * FROM cocohooks.stats;
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/delivery/stats/ok')) AS hso \gset
SELECT cocohooks.register_hook('dl_t', 'post_save', recv_url('/status/500/delivery/stats'), max_retries => 0) AS hsf \gset
INSERT INTO dl_t VALUES (40, 'counted');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT s.queued - s2.queued AS queued, s.delivered - s2.delivered AS delivered,
       s.failed - s2.failed AS failed, s.retried - s2.retried AS retried,
       s.dropped - s2.dropped AS dropped, s.in_flight, s.queue_bytes_used,
       s.queue_bytes_total > 0 AS has_queue, s.queue_bytes_total = s2.queue_bytes_total AS same_size
  FROM cocohooks.stats s, dl_stats2 s2;
-- direct writes count nothing
RESET cocohooks.api_session;
CREATE TABLE dl_stats3 AS SELECT * FROM cocohooks.stats;
INSERT INTO dl_t VALUES (41, 'direct');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT s.queued - s3.queued AS queued, s.delivered - s3.delivered AS delivered,
       s.failed - s3.failed AS failed
  FROM cocohooks.stats s, dl_stats3 s3;
SET cocohooks.api_session = on;
SELECT cocohooks.unregister_hook(:hso), cocohooks.unregister_hook(:hsf);

-- log_deliveries = 'all' logs successes too
SELECT cocohooks.register_hook('dl_t', 'pre_save', recv_url('/delivery/logged')) AS hlog \gset
ALTER SYSTEM SET cocohooks.log_deliveries = 'all';
SELECT pg_reload_conf();
-- wait (bounded) until the worker has reloaded: a success gets logged
DO $$
DECLARE
    i int;
BEGIN
    FOR i IN 1..100 LOOP
        INSERT INTO dl_t VALUES (1000 + i, 'probe');
        PERFORM cocohooks.wait_for_deliveries('20 s');
        EXIT WHEN EXISTS (SELECT 1 FROM cocohooks.deliveries d JOIN cocohooks.hooks h ON h.id = d.hook_id
                           WHERE h.url LIKE '%/delivery/logged' AND d.success);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT count(*) > 0 AS success_logged FROM cocohooks.deliveries WHERE hook_id = :hlog;
INSERT INTO dl_t VALUES (50, 'logged');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT event, collection, document_id, success, status_code, error, attempts,
       duration_ms >= 0 AS duration_ok, queued_at <= finished_at AS times_ok,
       webhook_id = (SELECT headers->>'webhook-id' FROM recv('/delivery/logged')
                      WHERE body::jsonb->'document'->>'id' = '50') AS same_webhook_id
  FROM cocohooks.deliveries WHERE hook_id = :hlog AND document_id = '50';

-- Deliveries run concurrently: three slow receivers at once
SELECT cocohooks.register_hook('dl_t', 'pre_save', recv_url('/slow/1500/delivery/concurrent')) AS hconc \gset
-- (a new session, so this does not depend on the hook cache of this one)
\c -
SET cocohooks.api_session = on;
INSERT INTO dl_t VALUES (60, 'c'), (61, 'c'), (62, 'c');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS requests, max(received_at) - min(received_at) < 1.2 AS arrived_together
  FROM recv('/slow/1500/delivery/concurrent');
SELECT count(*) AS logged, bool_and(success) AS all_ok,
       max(finished_at) - min(queued_at) < interval '4 s' AS in_parallel
  FROM cocohooks.deliveries WHERE hook_id = :hconc;
SELECT cocohooks.unregister_hook(:hconc);

-- back to the default: successes are not logged any more
ALTER SYSTEM RESET cocohooks.log_deliveries;
SELECT pg_reload_conf();
DO $$
DECLARE
    i int;
BEGIN
    FOR i IN 1..100 LOOP
        INSERT INTO dl_t VALUES (2000 + i, 'probe');
        PERFORM cocohooks.wait_for_deliveries('20 s');
        EXIT WHEN NOT EXISTS (SELECT 1 FROM cocohooks.deliveries d
                               WHERE d.collection = 'dl_t' AND d.document_id = (2000 + i)::text);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT current_setting('cocohooks.log_deliveries') AS log_deliveries;
INSERT INTO dl_t VALUES (51, 'not logged');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS logged FROM cocohooks.deliveries WHERE hook_id = :hlog AND document_id = '51';
SELECT count(*) AS received FROM recv('/delivery/logged') WHERE body::jsonb->'document'->>'id' = '51';

-- idle: nothing in flight, the queue empty
SELECT in_flight, queue_bytes_used, queue_bytes_total > 0 AS has_queue,
       dropped - (SELECT dropped FROM dl_stats0) AS dropped
  FROM cocohooks.stats;

RESET cocohooks.api_session;
DROP TABLE dl_t, dl_stats0, dl_stats1, dl_stats2, dl_stats3;
SELECT count(*) FROM cocohooks.hooks;
