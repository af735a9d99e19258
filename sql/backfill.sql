-- Backfills (cocohooks.backfill), docs/reference.md.  Receiver paths begin
-- with /bf/.  Errors that name a hook's id are checked in
-- test/t/385_backfill.pl, where ids do not depend on the other files.

CREATE TABLE bf_items (id int PRIMARY KEY, name text, secret text);
INSERT INTO bf_items SELECT g, 'item ' || g, 's' || g FROM generate_series(1, 5) g;
SELECT cocohooks.register_hook('bf_items', 'post_save', recv_url('/bf/items'),
         exclude_columns => ARRAY['secret']) AS bf_hook \gset

-- bad arguments
SELECT cocohooks.backfill(NULL);
SELECT cocohooks.backfill(999999);
SELECT cocohooks.backfill(:bf_hook, batch_rows => 0);
SELECT cocohooks.backfill(:bf_hook, batch_rows => 10001);
SELECT cocohooks.backfill(:bf_hook, batch_rows => NULL);
SELECT cocohooks.backfill(:bf_hook, filter => 'NEW.nope = 1');
SELECT cocohooks.backfill(:bf_hook, filter => 'NEW.id +');
SELECT cocohooks.cancel_backfill(NULL);
SELECT cocohooks.cancel_backfill(999999);
SELECT count(*) AS no_backfill_yet FROM cocohooks.backfills;

-- a backfill of a disabled hook waits for it (and can be cancelled)
SELECT cocohooks.disable_hook(:bf_hook);
-- (its NOTICE names ids: test/t/385_backfill.pl checks it)
SET client_min_messages = warning;
SELECT cocohooks.backfill(:bf_hook) AS bf_first \gset
RESET client_min_messages;
SELECT state, filter, batch_rows, rows_read, last_key, finished_at IS NULL AS not_finished
  FROM cocohooks.backfills WHERE id = :bf_first;
SELECT cocohooks.cancel_backfill(:bf_first) AS cancelled;
SELECT cocohooks.cancel_backfill(:bf_first) AS cancelled_again;
SELECT state, finished_at IS NOT NULL AS finished FROM cocohooks.backfills WHERE id = :bf_first;

-- enabled: rows 4 and 5 pass the filter, two rows read per chunk
SELECT cocohooks.enable_hook(:bf_hook);
SELECT cocohooks.backfill(:bf_hook, filter => 'new.id >= 4', batch_rows => 2) AS bf_second \gset
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN (SELECT state FROM cocohooks.backfills ORDER BY id DESC LIMIT 1) <> 'running';
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$;
SELECT state, filter, batch_rows, rows_read, rows_sent, rows_filtered, rows_superseded,
       last_key, error, finished_at >= started_at AS finished, rows_estimate >= 0 AS estimated
  FROM cocohooks.backfills WHERE id = :bf_second;
SELECT n, path, body, headers->>'webhook-id' LIKE 'bf' || :bf_second || '_' || (body::jsonb->>'document_id') || '_' || :bf_hook AS webhook_id_ok
  FROM recv('/bf/') ORDER BY n;
SELECT json_keys(body) FROM recv('/bf/') LIMIT 1;
-- each delivery is logged like any other (by default only failures are)
SELECT count(*) AS failures FROM cocohooks.deliveries WHERE hook_id = :bf_hook;

SELECT cocohooks.unregister_hook(:bf_hook);
SELECT count(*) AS gone_with_the_hook FROM cocohooks.backfill_jobs WHERE hook_id = :bf_hook;
DROP TABLE bf_items;
