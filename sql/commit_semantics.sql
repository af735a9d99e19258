-- pre_* events go out at once; post_* only when the transaction commits,
-- and never for rows of rolled-back (sub)transactions (docs/guarantees.md §4).
-- Receiver paths used here all begin with /commit/.

CREATE TABLE cs_t (id int PRIMARY KEY, v text);
SELECT cocohooks.register_hook('cs_t', e, recv_url('/commit/t/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;

-- ids whose event reached the receiver, per event, for ids in [lo, hi]
CREATE FUNCTION cs_seen(lo int, hi int)
RETURNS TABLE (event text, ids text) LANGUAGE sql AS $$
  SELECT e, (SELECT string_agg(r.id::text, ',' ORDER BY r.id)
               FROM (SELECT (body::jsonb->'document'->>'id')::int AS id
                       FROM recv('/commit/t/' || e)) r
              WHERE r.id BETWEEN lo AND hi)
    FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e
$$;

SET cocohooks.api_session = on;

-- committed: everything
BEGIN;
INSERT INTO cs_t VALUES (1, 'a'), (2, 'b');
COMMIT;
DELETE FROM cs_t WHERE id = 2;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(1, 9);

-- post_save is delivered only after COMMIT
BEGIN;
INSERT INTO cs_t VALUES (10, 'pending');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(10, 19);
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(10, 19);

-- ROLLBACK: pre_* delivered, post_* not
BEGIN;
INSERT INTO cs_t VALUES (20, 'rolled back');
UPDATE cs_t SET v = 'rolled back too' WHERE id = 1;
DELETE FROM cs_t WHERE id = 10;
ROLLBACK;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(20, 29);
SELECT count(*) AS updates_of_1 FROM recv('/commit/t/post_save')
 WHERE body::jsonb->>'document_id' = '1' AND body::jsonb->>'operation' = 'update';
SELECT count(*) AS pre_updates_of_1 FROM recv('/commit/t/pre_save')
 WHERE body::jsonb->'document'->>'id' = '1' AND body::jsonb->>'operation' = 'update';
SELECT * FROM cs_seen(10, 19);
SELECT * FROM cs_t ORDER BY id;

-- an error aborts the transaction: no post_*
BEGIN;
INSERT INTO cs_t VALUES (30, 'then error');
SELECT 1 / 0;
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(30, 39);

-- a failing statement's own rows: the INSERT of 41 runs the BEFORE trigger,
-- then fails on the duplicate key; 40 committed
INSERT INTO cs_t VALUES (40, 'ok');
INSERT INTO cs_t VALUES (41, 'dup'), (40, 'dup');
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(40, 49);

-- savepoints: ROLLBACK TO drops the post_* of that savepoint only
BEGIN;
INSERT INTO cs_t VALUES (50, 'top');
SAVEPOINT a;
INSERT INTO cs_t VALUES (51, 'in a');
SAVEPOINT b;
INSERT INTO cs_t VALUES (52, 'in b');
ROLLBACK TO SAVEPOINT b;
INSERT INTO cs_t VALUES (53, 'in a after rollback to b');
RELEASE SAVEPOINT a;
SAVEPOINT c;
INSERT INTO cs_t VALUES (54, 'in c');
DELETE FROM cs_t WHERE id = 50;
ROLLBACK TO SAVEPOINT c;
INSERT INTO cs_t VALUES (55, 'top again');
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(50, 59);
SELECT id FROM cs_t WHERE id BETWEEN 50 AND 59 ORDER BY id;

-- nested savepoints: a released inner savepoint is rolled back with its outer
BEGIN;
INSERT INTO cs_t VALUES (60, 'top');
SAVEPOINT outer_sp;
INSERT INTO cs_t VALUES (61, 'outer');
SAVEPOINT inner_sp;
INSERT INTO cs_t VALUES (62, 'inner');
RELEASE SAVEPOINT inner_sp;
ROLLBACK TO SAVEPOINT outer_sp;
SAVEPOINT again;
INSERT INTO cs_t VALUES (63, 'again');
SAVEPOINT deeper;
INSERT INTO cs_t VALUES (64, 'deeper');
RELEASE SAVEPOINT deeper;
RELEASE SAVEPOINT again;
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(60, 69);

-- savepoints, then the whole transaction rolls back: nothing post_*
BEGIN;
SAVEPOINT s1;
INSERT INTO cs_t VALUES (70, 'x');
RELEASE SAVEPOINT s1;
INSERT INTO cs_t VALUES (71, 'y');
ROLLBACK;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(70, 79);

-- an exception block is a subtransaction too
DO $$
BEGIN
    INSERT INTO cs_t VALUES (80, 'kept');
    BEGIN
        INSERT INTO cs_t VALUES (81, 'undone');
        RAISE EXCEPTION 'undo 81';
    EXCEPTION WHEN raise_exception THEN
        INSERT INTO cs_t VALUES (82, 'handler');
    END;
END $$;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(80, 89);

-- a deferred constraint violated at COMMIT: no post_* events
CREATE TABLE cs_parent (id int PRIMARY KEY);
CREATE TABLE cs_child (
    id     int PRIMARY KEY,
    parent int REFERENCES cs_parent DEFERRABLE INITIALLY DEFERRED,
    code   int UNIQUE DEFERRABLE INITIALLY DEFERRED
);
INSERT INTO cs_parent VALUES (1);
SELECT cocohooks.register_hook('cs_child', e, recv_url('/commit/child/' || e)) > 0 AS registered
  FROM unnest(ARRAY['pre_save', 'post_save', 'pre_delete', 'post_delete']) AS e;
BEGIN;
INSERT INTO cs_child VALUES (1, 999, 1);
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
BEGIN;
INSERT INTO cs_child VALUES (2, 1, 5);
INSERT INTO cs_child VALUES (3, 1, 5);
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
INSERT INTO cs_child VALUES (4, 1, 4);
BEGIN;
DELETE FROM cs_child WHERE id = 4;
DELETE FROM cs_parent WHERE id = 1;
COMMIT;
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT path, body::jsonb->'document'->>'id' AS id, body::jsonb->>'operation' AS operation
  FROM recv('/commit/child/') ORDER BY path, 2;
SELECT * FROM cs_child ORDER BY id;

-- PREPARE TRANSACTION with pending post_* events (durability = wal, the
-- default; memory mode refuses it, see test/t/180_memory_mode.pl): they
-- wait in the WAL with the prepared transaction and go out after COMMIT
-- PREPARED, never after ROLLBACK PREPARED; its pre_* events went out at once
SELECT durability FROM cocohooks.stats;
BEGIN;
INSERT INTO cs_t VALUES (90, 'prepared');
PREPARE TRANSACTION 'cs_pending';
BEGIN;
INSERT INTO cs_t VALUES (91, 'prepared, rolled back');
PREPARE TRANSACTION 'cs_pending_rollback';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'cs_pending%';
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(90, 99);
COMMIT PREPARED 'cs_pending';
ROLLBACK PREPARED 'cs_pending_rollback';
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT * FROM cs_seen(90, 99);

-- PREPARE of a transaction with no pending post_* events works
BEGIN;
INSERT INTO cs_parent VALUES (2);
PREPARE TRANSACTION 'cs_no_hooks';
COMMIT PREPARED 'cs_no_hooks';
-- pre_* only: they went out, nothing is pending
CREATE TABLE cs_pre_only (id int PRIMARY KEY);
SELECT cocohooks.register_hook('cs_pre_only', 'pre_save', recv_url('/commit/pre_only/pre_save')) > 0 AS registered;
BEGIN;
INSERT INTO cs_pre_only VALUES (1);
PREPARE TRANSACTION 'cs_pre_only';
COMMIT PREPARED 'cs_pre_only';
-- post_* events rolled back to a savepoint are not pending any more
BEGIN;
SAVEPOINT s;
INSERT INTO cs_t VALUES (95, 'rolled back before prepare');
ROLLBACK TO SAVEPOINT s;
PREPARE TRANSACTION 'cs_nothing_left';
COMMIT PREPARED 'cs_nothing_left';
-- an untagged session writes a hooked table under PREPARE freely
RESET cocohooks.api_session;
BEGIN;
INSERT INTO cs_t VALUES (96, 'untagged');
PREPARE TRANSACTION 'cs_untagged';
COMMIT PREPARED 'cs_untagged';
SELECT cocohooks.wait_for_deliveries('20 s');
SELECT count(*) AS pre_only_requests FROM recv('/commit/pre_only/');
SELECT * FROM cs_seen(90, 99);
SELECT id FROM cs_t WHERE id >= 90 ORDER BY id;
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;

-- nothing failed
SELECT count(*) AS failures FROM cocohooks.deliveries WHERE collection LIKE 'cs_%';

DROP TABLE cs_t, cs_child, cs_parent, cs_pre_only;
DROP FUNCTION cs_seen(int, int);
SELECT count(*) FROM cocohooks.hooks;
