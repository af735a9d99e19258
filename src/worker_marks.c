/*-------------------------------------------------------------------------
 *
 * worker_marks.c
 *	  The marks a database's worker and its backends signal each other
 *	  with, in the database's dbslot.
 *
 * The worker reports how far it has finished (finished_seq for queued
 * events, wal_done for events read from the WAL) and its counters;
 * backends tell it about events the ring does not carry (WAL-only events,
 * COMMIT PREPARED running), that the hooks changed (hooks_generation), that
 * a backfill started or was cancelled (backfills_generation), and
 * ask it to look whether the extension still exists.  wait_for_deliveries()
 * (stats.c) and CREATE/DROP EXTENSION sleep on the dbslot's condition
 * variable until the worker's mark passes what they wait for.
 *
 * Runs in: backends and the worker.
 *
 * Invariants:
 *	- every mark is an atomic in the dbslot, written without the dbslot's lock,
 *	  and only ever moves forward while the dbslot keeps its generation
 *	  (finished_seq, wal_done, wal_only_lsn, the check requests);
 *	- whoever moves a mark that someone may wait for broadcasts on
 *	  finished_cv after writing it;
 *	- none of these raises an error: they are called after commit and in
 *	  the worker's exit path; a process whose database has no dbslot does
 *	  nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "db_slots.h"
#include "dbslot_internal.h"
#include "worker_marks.h"

/*
 * Events whose WAL records end at or before lsn are not all in the queue
 * (it was full, or a big transaction left them to the WAL): the worker's
 * WAL reader delivers them.  Called before the writer releases its row
 * locks, so a later event of the same document, queued after this, makes
 * the worker wait for the WAL reader before sending it (document order).
 */
void
coco_marks_note_wal_only(uint64 lsn)
{
	CocoDbSlot *slot = coco_dbslot_mine(true);
	uint64		seen;

	if (slot == NULL)
		return;
	seen = pg_atomic_read_u64(&slot->wal_only_lsn);
	while (seen < lsn &&
		   !pg_atomic_compare_exchange_u64(&slot->wal_only_lsn, &seen, lsn))
		;
	coco_dbslot_wake_worker();
}

/*
 * A COMMIT PREPARED releases the prepared transaction's locks before the
 * statement returns, and its events are only in the WAL: while one runs,
 * the worker cannot tell how far to wait (see coco_marks_wal_only).
 */
static CocoDbSlot *commit_prepared_slot = NULL;

void
coco_marks_commit_prepared_begin(void)
{
	/* a database without a dbslot has no worker to tell (it holds at start) */
	commit_prepared_slot = coco_dbslot_mine(false);
	if (commit_prepared_slot)
		pg_atomic_fetch_add_u32(&commit_prepared_slot->commit_prepared_running, 1);
}

void
coco_marks_commit_prepared_end(uint64 lsn)
{
	if (commit_prepared_slot == NULL)
		return;
	if (lsn != 0)
		coco_marks_note_wal_only(lsn);
	pg_atomic_fetch_sub_u32(&commit_prepared_slot->commit_prepared_running, 1);
	commit_prepared_slot = NULL;
}

/*
 * For the worker, after popping: the end of the newest WAL-only event,
 * or false if a COMMIT PREPARED is running (ask again later).
 */
bool
coco_marks_wal_only(uint64 *lsn)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	*lsn = 0;
	if (slot == NULL)
		return true;
	pg_memory_barrier();
	if (pg_atomic_read_u32(&slot->commit_prepared_running) != 0)
		return false;
	*lsn = pg_atomic_read_u64(&slot->wal_only_lsn);
	return true;
}

/*
 * At worker start: events a previous worker popped but did not finish are
 * gone with it.  Count them as dropped and let waiters past them.
 */
uint64
coco_marks_lose_unfinished(bool in_wal)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);
	uint64		popped;
	uint64		finished;

	if (slot == NULL)
		return 0;
	LWLockAcquire(slot->lock, LW_SHARED);
	popped = slot->popped_seq;
	LWLockRelease(slot->lock);

	finished = pg_atomic_read_u64(&slot->finished_seq);
	if (popped <= finished)
		return 0;
	/* events in the WAL are read again from there: not lost */
	if (!in_wal)
		pg_atomic_fetch_add_u64(&slot->dropped, popped - finished);
	coco_marks_finish_upto(popped);
	return in_wal ? 0 : popped - finished;
}

/*
 * The worker saved every event it popped or left in the queue
 * (event_store.c).  Their sequence numbers are done with, but until the
 * next worker has queued them again (coco_marks_store_requeued) waiters
 * must not think them finished.
 */
void
coco_marks_hand_off_popped(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);
	uint64		popped;

	if (slot == NULL)
		return;
	pg_atomic_write_u32(&slot->store_pending, 1);
	pg_atomic_fetch_add_u32(&slot->store_generation, 1);
	pg_write_barrier();
	LWLockAcquire(slot->lock, LW_SHARED);
	popped = slot->popped_seq;
	LWLockRelease(slot->lock);
	coco_marks_finish_upto(popped);
}

/* Every saved event is back in the queue (or there were none). */
void
coco_marks_store_requeued(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	if (pg_atomic_read_u32(&slot->store_pending) == 0)
		return;
	pg_atomic_write_u32(&slot->store_pending, 0);
	ConditionVariableBroadcast(&slot->finished_cv);
}

/* Every event up to seq is finished and its log row committed. */
void
coco_marks_finish_upto(uint64 seq)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	if (seq <= pg_atomic_read_u64(&slot->finished_seq))
		return;
	pg_atomic_write_u64(&slot->finished_seq, seq);
	ConditionVariableBroadcast(&slot->finished_cv);
}

/*
 * Asks the worker to look whether the extension exists (it was created or
 * dropped) and waits, up to wait_ms, until it has.  Returns whether a
 * worker answered.  Never raises an error: runs after commit.
 */
bool
coco_marks_request_extension_check(int wait_ms)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);
	uint32		request;
	bool		answered;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	if (slot == NULL)
		return false;
	request = pg_atomic_add_fetch_u32(&slot->ext_check_request, 1);
	/* a worker about to start answers too, once it has set up */
	coco_dbslot_wake_worker();
	coco_dbslot_wake_launcher();
	ConditionVariablePrepareToSleep(&slot->finished_cv);
	while (!(answered = (int32) (pg_atomic_read_u32(&slot->ext_check_done) - request) >= 0) &&
		   coco_dbslot_sleep_until(slot, deadline))
		;
	ConditionVariableCancelSleep();
	return answered;
}

/* For the worker: true if a check was asked for since the one it answered. */
bool
coco_marks_extension_check_requested(uint32 *request)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	*request = 0;
	if (slot == NULL)
		return false;
	*request = pg_atomic_read_u32(&slot->ext_check_request);
	return *request != pg_atomic_read_u32(&slot->ext_check_done);
}

void
coco_marks_extension_checked(uint32 request)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	pg_atomic_write_u32(&slot->ext_check_done, request);
	ConditionVariableBroadcast(&slot->finished_cv);
}

/*
 * Events the WAL reader found that the queue had not carried (negative: a
 * queued copy of one of them came after all, and counted itself).
 */
void
coco_marks_count_queued(int64 n)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	if (n >= 0)
		pg_atomic_fetch_add_u64(&slot->queued, (uint64) n);
	else
		pg_atomic_fetch_sub_u64(&slot->queued, (uint64) -n);
}

void
coco_marks_set_wal_restart(uint64 lsn)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	pg_atomic_write_u64(&slot->wal_restart, lsn);
}

void
coco_marks_set_wal_done(uint64 lsn)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	pg_atomic_write_u32(&slot->wal_active, lsn != 0 ? 1 : 0);
	if (lsn == pg_atomic_read_u64(&slot->wal_done))
		return;
	pg_atomic_write_u64(&slot->wal_done, lsn);
	ConditionVariableBroadcast(&slot->finished_cv);
}

/* The worker's counters, shown by cocohooks.stats. */
void
coco_marks_count_deliveries(uint64 delivered, uint64 failed, uint64 retried)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	if (delivered)
		pg_atomic_fetch_add_u64(&slot->delivered, delivered);
	if (failed)
		pg_atomic_fetch_add_u64(&slot->failed, failed);
	if (retried)
		pg_atomic_fetch_add_u64(&slot->retried, retried);
}

void
coco_marks_set_in_flight(int n)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	pg_atomic_write_u32(&slot->in_flight, (uint32) n);
}

/*
 * A transaction that changed cocohooks.hooks committed: the worker reads
 * the hooks' signing secrets again before its next signed request.
 */
void
coco_marks_bump_hooks_generation(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot != NULL)
		pg_atomic_fetch_add_u32(&slot->hooks_generation, 1);
}

uint32
coco_marks_hooks_generation(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	return slot ? pg_atomic_read_u32(&slot->hooks_generation) : 0;
}

/*
 * A transaction that started or cancelled a backfill committed: the worker
 * reads cocohooks.backfill_jobs again, at once.
 */
void
coco_marks_bump_backfills_generation(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	pg_atomic_fetch_add_u32(&slot->backfills_generation, 1);
	coco_dbslot_wake_worker();
}

uint32
coco_marks_backfills_generation(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	return slot ? pg_atomic_read_u32(&slot->backfills_generation) : 0;
}

/* Deliveries parked in cocohooks.retry_queue, and not finished yet. */
void
coco_marks_set_parked(uint64 n)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	if (slot == NULL)
		return;
	if (pg_atomic_exchange_u64(&slot->parked, n) != 0 && n == 0)
		ConditionVariableBroadcast(&slot->finished_cv);
}
