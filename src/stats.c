/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The SQL functions that report on a database's events:
 *	  cocohooks.stats (through queue_stats()) and wait_for_deliveries().
 *
 * Runs in: backends.
 *
 * Invariants:
 *	- wait_for_deliveries() waits only for events written before it was
 *	  called: their place in the ring (a sequence number), and in wal mode
 *	  their place in the WAL; saved events handed on by a worker that
 *	  exited count once they are back in the ring;
 *	- every wait is bounded by the caller's timeout and wakes at least
 *	  every 100 ms.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "dbslot_internal.h"
#include "settings.h"
#include "wal_position.h"

PG_FUNCTION_INFO_V1(cocohooks_stats);
PG_FUNCTION_INFO_V1(cocohooks_wait_for_deliveries);

/*
 * wait_for_deliveries() while the worker reads events from the WAL: every
 * event written before the call, once in the WAL on disk, is read and
 * finished when the reader's done mark passes the call's WAL position
 * (target).  Events queued but not in the WAL (redeliver()) are waited for
 * by their place in the queue, as in memory mode.
 */
static bool
wal_done_passed(CocoDbSlot *slot, uint64 target)
{
	return pg_atomic_read_u64(&slot->wal_done) >= target;
}

/*
 * Deliveries parked in cocohooks.retry_queue are not finished: wait until
 * none is left (those parked meanwhile included).
 */
static bool
none_parked(CocoDbSlot *slot, uint64 unused)
{
	return pg_atomic_read_u64(&slot->parked) == 0;
}

/* Sleeps on the dbslot's condition variable until done() or the deadline. */
static bool
wait_for(CocoDbSlot *slot, bool (*done) (CocoDbSlot *slot, uint64 arg),
		 uint64 arg, TimestampTz deadline)
{
	bool		ok;

	ConditionVariablePrepareToSleep(&slot->finished_cv);
	while (!(ok = done(slot, arg)) && coco_dbslot_sleep_until(slot, deadline))
		;
	ConditionVariableCancelSleep();
	return ok;
}

/* one row of cocohooks.stats: this database's counters and queue */
Datum
cocohooks_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {0};
	uint64		head;
	uint64		tail;
	uint64		restart;
	CocoDbSlot *slot;

	coco_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (tupdesc->natts < 8 || tupdesc->natts > 10)
		elog(ERROR, "unexpected row type of cocohooks.queue_stats()");
	slot = coco_dbslot_mine(false);
	if (slot == NULL)
	{
		/* no worker has served this database since the server started */
		for (int i = 0; i < 10; i++)
			values[i] = Int64GetDatum(0);
		values[5] = Int32GetDatum(0);
		values[7] = Int64GetDatum((int64) coco_dbslots->pool_chunks * coco_dbslots->chunk_size);
		values[8] = CStringGetTextDatum(coco_wal_mode() ? "wal" : "memory");
		tupdesc = BlessTupleDesc(tupdesc);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	LWLockAcquire(slot->lock, LW_SHARED);
	head = slot->head;
	tail = slot->tail;
	LWLockRelease(slot->lock);

	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->queued));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->delivered));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->failed));
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->retried));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->dropped));
	values[5] = Int32GetDatum((int32) pg_atomic_read_u32(&slot->in_flight));
	values[6] = Int64GetDatum((int64) (head - tail));
	/* the pool all databases share */
	values[7] = Int64GetDatum((int64) coco_dbslots->pool_chunks * coco_dbslots->chunk_size);
	/* 0.2.0's columns; a 0.1.0 schema (before ALTER EXTENSION UPDATE) has 8 */
	values[8] = CStringGetTextDatum(coco_wal_mode() ? "wal" : "memory");
	restart = pg_atomic_read_u32(&slot->wal_active) ?
		pg_atomic_read_u64(&slot->wal_restart) : 0;
	values[9] = Int64GetDatum(restart == 0 ? 0 :
							  (int64) Max(GetXLogInsertRecPtr(), restart) - (int64) restart);
	if (tupdesc->natts < 8 || tupdesc->natts > 10)
		elog(ERROR, "unexpected row type of cocohooks.queue_stats()");
	tupdesc = BlessTupleDesc(tupdesc);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * wait_for_deliveries(timeout interval): true once every event queued before
 * the call has finished, false if the timeout passes first.
 */
Datum
cocohooks_wait_for_deliveries(PG_FUNCTION_ARGS)
{
	Interval   *timeout;
	int64		timeout_us;
	TimestampTz deadline;
	uint64		target;
	uint32		generation;
	bool		requeue_seen = false;
	bool		done = false;
	XLogRecPtr	wal_target = InvalidXLogRecPtr;
	CocoDbSlot *slot;

	coco_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be null")));
	timeout = PG_GETARG_INTERVAL_P(0);
	timeout_us = timeout->time +
		((int64) timeout->day + (int64) timeout->month * DAYS_PER_MONTH) * USECS_PER_DAY;
	if (timeout_us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	deadline = GetCurrentTimestamp() + Min(timeout_us, (int64) 100 * 365 * USECS_PER_DAY);
	/* a database without a dbslot gets one, and so a worker */
	slot = coco_dbslot_mine(true);
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cocohooks serves no more databases"),
				 errdetail("Each of the %d databases \"%s\" allows has its worker.",
						   coco_dbslots->nslots, "cocohooks.max_databases"),
				 errhint("Raise \"%s\" and restart the server.", "cocohooks.max_databases")));
	if (coco_wal_mode() && pg_atomic_read_u32(&slot->wal_active) != 0)
		wal_target = coco_wal_last_record_end();

	generation = pg_atomic_read_u32(&slot->store_generation);
	pg_read_barrier();
	LWLockAcquire(slot->lock, LW_SHARED);
	target = slot->last_seq;
	LWLockRelease(slot->lock);

	ConditionVariablePrepareToSleep(&slot->finished_cv);
	for (;;)
	{
		/*
		 * Saved events are back in the ring only once store_pending is
		 * clear, under new numbers: if a save happened since we looked, or
		 * one was pending, wait for those numbers too.
		 */
		if (pg_atomic_read_u32(&slot->store_pending) != 0)
			requeue_seen = true;
		else
		{
			uint32		now_generation = pg_atomic_read_u32(&slot->store_generation);

			if (now_generation != generation || requeue_seen)
			{
				generation = now_generation;
				requeue_seen = false;
				pg_read_barrier();
				LWLockAcquire(slot->lock, LW_SHARED);
				target = Max(target, slot->last_seq);
				LWLockRelease(slot->lock);
			}
			if (pg_atomic_read_u64(&slot->finished_seq) >= target)
			{
				done = true;
				break;
			}
		}
		if (!coco_dbslot_sleep_until(slot, deadline))
			break;
	}
	ConditionVariableCancelSleep();

	if (done && !XLogRecPtrIsInvalid(wal_target))
	{
		XLogFlush(wal_target);
		coco_dbslot_wake_worker();
		done = wait_for(slot, wal_done_passed, wal_target, deadline);
	}
	if (done)
		done = wait_for(slot, none_parked, 0, deadline);
	PG_RETURN_BOOL(done);
}
