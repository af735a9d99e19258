-- Batched delivery (batch_size, batch_wait), docs/reference.md.  Receiver
-- paths begin with /batches/.  Grouping, order, retries, signatures and
-- crashes are tested in test/t/380_batches.pl.

CREATE TABLE bt_items (id int PRIMARY KEY, name text);

-- the arguments: batch_size 1 to 1000, batch_wait 0 to 10 seconds
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_size => 0);
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_size => 1001);
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_size => NULL);
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_wait => '-1 ms');
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_wait => '11 s');
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_wait => '1 day');
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/x'), batch_wait => NULL);
SELECT count(*) AS no_hook_registered FROM cocohooks.hooks WHERE collection = 'bt_items'::regclass;

-- the defaults: one event per request, 5 ms
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/one')) AS one_id \gset
SELECT batch_size, batch_wait FROM cocohooks.hooks WHERE id = :one_id;

-- a batched hook: three events of one transaction in one request
SELECT cocohooks.register_hook('bt_items', 'post_save', recv_url('/batches/three'),
         batch_size => 3, batch_wait => '5 s') AS three_id \gset
SELECT batch_size, batch_wait FROM cocohooks.hooks WHERE id = :three_id;

SET cocohooks.api_session = on;
INSERT INTO bt_items SELECT g, 'item ' || g FROM generate_series(1, 3) g;
RESET cocohooks.api_session;
SELECT cocohooks.wait_for_deliveries('20 s');

-- alone: three requests, each an object
SELECT count(*) AS requests, bool_and(json_typeof(body::json) = 'object') AS objects,
       bool_and(headers->>'webhook-id' NOT LIKE 'batch\_%') AS event_ids
  FROM recv('/batches/one');
-- batched: one request, an array of the three bodies in commit order, each
-- with its own webhook-id first
SELECT count(*) AS requests, min(json_array_length(body::json)) AS items,
       bool_and(headers->>'webhook-id' LIKE 'batch\_%\_' || :three_id || '\_3\_%') AS batch_id,
       min(headers->>'content-type') AS content_type,
       min(headers->>'x-hook-event') AS x_hook_event
  FROM recv('/batches/three');
SELECT i.o, json_keys(i.item::text) AS keys, i.item->>'document_id' AS document_id,
       i.item->>'webhook_id' LIKE '%\_' || :three_id AS own_id
  FROM recv('/batches/three') r,
       json_array_elements(r.body::json) WITH ORDINALITY AS i(item, o)
 ORDER BY i.o;

-- the log (a row per event, naming its batch) is checked in
-- test/t/380_batches.pl, with cocohooks.log_deliveries = 'all'

-- alter_hook: the batch settings are changed like the others, and belong to
-- the settings version (the old one is kept for the events that name it)
SELECT cocohooks.alter_hook(:three_id, batch_size => 0);
SELECT cocohooks.alter_hook(:three_id, batch_wait => '20 s');
SELECT cocohooks.alter_hook(:three_id, clear => '{batch_size}');
SELECT cocohooks.alter_hook(:three_id, clear => '{batch_wait}');
SELECT settings_version AS version_before FROM cocohooks.hooks WHERE id = :three_id;
SELECT cocohooks.alter_hook(:three_id, batch_size => 10, batch_wait => '1 s');
SELECT settings_version, batch_size, batch_wait FROM cocohooks.hooks WHERE id = :three_id;
SELECT settings_version, batch_size, batch_wait FROM cocohooks.hook_versions
 WHERE hook_id = :three_id ORDER BY settings_version;
-- a change of nothing but the batch settings makes a new version too
SELECT cocohooks.alter_hook(:three_id, batch_wait => '2 s');
SELECT settings_version, batch_wait FROM cocohooks.hooks WHERE id = :three_id;
-- calls written before the batch settings keep working, clear included
SELECT cocohooks.alter_hook(:three_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                            NULL, NULL, NULL, '{max_concurrent}');
SELECT batch_size, batch_wait, max_concurrent FROM cocohooks.hooks WHERE id = :three_id;

SELECT cocohooks.unregister_hook(:one_id), cocohooks.unregister_hook(:three_id);
DROP TABLE bt_items;
