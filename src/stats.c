/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The SQL functions that report on a database's events:
 *	  cocohooks.stats (through queue_stats()), cocohooks.hook_stats
 *	  (through hook_counters()), reset_stats() and wait_for_deliveries().
 *
 * Runs in: backends.
 *
 * Invariants:
 *	- wait_for_deliveries() waits only for events written before it was
 *	  called: their place in the ring (a sequence number), and in wal mode
 *	  their place in the WAL; saved events handed on by a worker that
 *	  exited count once they are back in the ring;
 *	- every wait is bounded by the caller's timeout and wakes at least
 *	  every 100 ms;
 *	- a hook's statistics are shown and reset only to a caller who may see
 *	  the hook (the catalog's row security decides, as for its log).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/tuplestore.h"

#include "as_owner.h"
#include "dbslot_internal.h"
#include "hook_stats.h"
#include "pg_compat.h"
#include "settings.h"
#include "sql_array.h"
#include "wal_position.h"

PG_FUNCTION_INFO_V1(cocohooks_stats);
PG_FUNCTION_INFO_V1(cocohooks_hook_counters);
PG_FUNCTION_INFO_V1(cocohooks_reset_stats);
PG_FUNCTION_INFO_V1(cocohooks_wait_for_deliveries);

#define HOOK_COUNTERS_COLS	28

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
 * The ids of the hooks the caller may see (the catalog's row security),
 * one_id alone if valid (and visible); palloc'd, *n of them.
 */
static int64 *
visible_hooks(int64 one_id, bool only_one, int *n)
{
	int64	   *ids;
	Datum		arg = Int64GetDatum(one_id);
	Oid			type = INT8OID;

	(void) coco_hooks_catalog();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(only_one ?
							  "SELECT id FROM cocohooks.hooks WHERE id = $1" :
							  "SELECT id FROM cocohooks.hooks",
							  only_one ? 1 : 0, &type, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	ids = MemoryContextAlloc(CurTransactionContext,
							 sizeof(int64) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1, &isnull));
	}
	*n = (int) SPI_processed;
	SPI_finish();
	return ids;
}

/* a hash in the current memory context whose entries start with a hook id */
static HTAB *
hash_by_hook_id(const char *name, Size entrysize, int n)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(int64);
	ctl.entrysize = entrysize;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, Max(n, 16), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

typedef struct HookParked
{
	int64		hook_id;
	int64		parked;
	int64		retrying;		/* parked after an attempt */
	TimestampTz oldest;
} HookParked;

/*
 * What is parked of each of the hooks ids, read as the catalog's owner
 * (the table holds messages: nobody else reads it); a hash by hook id.
 */
static HTAB *
parked_of(int64 *ids, int n)
{
	HTAB	   *parked;
	CocoAsOwner owner;
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Datum		arg;
	Oid			type = INT8ARRAYOID;

	parked = hash_by_hook_id("cocohooks parked per hook", sizeof(HookParked), n);
	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	arg = coco_sql_array(elems, NULL, n, INT8OID);
	coco_begin_as_owner(&owner);
	if (SPI_execute_with_args("SELECT hook_id, count(*), count(*) FILTER (WHERE attempts > 0), "
							  "min(queued_at) FROM cocohooks.retry_queue "
							  "WHERE hook_id = ANY ($1) GROUP BY hook_id",
							  1, &type, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.retry_queue");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		HookParked *p = hash_search(parked, &id, HASH_ENTER, NULL);

		p->parked = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		p->retrying = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		p->oldest = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	coco_end_as_owner(&owner);
	return parked;
}

/* a hook's row of the snapshot, by its id */
typedef struct StatsById
{
	int64		hook_id;
	CocoHookStatsRow *row;
} StatsById;

static Datum
percentile_datum(const CocoHookStatsRow *row, double q, TimestampTz now, bool *isnull)
{
	double		ms = coco_latency_percentile(row, q, now);

	*isnull = (ms < 0);
	return Float8GetDatum(ms < 0 ? 0 : ms);
}

/*
 * The latencies since the reset as Prometheus counts them: per bound of
 * coco_latency_bounds_s, how many took at most that (cumulative).
 */
static Datum
cumulative_buckets(const CocoHookStatsRow *r)
{
	Datum		counts[COCO_LATENCY_BOUNDS];
	uint64		sum = 0;

	for (int b = 0; b < COCO_LATENCY_BOUNDS; b++)
	{
		sum += r->latency_total[b];
		counts[b] = Int64GetDatum((int64) sum);
	}
	return coco_sql_array(counts, NULL, COCO_LATENCY_BOUNDS, INT8OID);
}

/*
 * hook_counters(): a row per hook the caller may see, with the worker's
 * counters (zero for a hook it has none of yet) and what is parked.
 */
Datum
cocohooks_hook_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	int			nids;
	int64	   *ids;
	int			nrows;
	CocoHookStatsRow *rows;
	HTAB	   *parked;
	HTAB	   *by_id;
	Datum		bound_datums[COCO_LATENCY_BOUNDS];
	Datum		bounds;

	coco_require_preload();
	coco_materialized_srf(fcinfo);
	for (int b = 0; b < COCO_LATENCY_BOUNDS; b++)
		bound_datums[b] = Float8GetDatum(coco_latency_bounds_s[b]);
	bounds = coco_sql_array(bound_datums, NULL, COCO_LATENCY_BOUNDS, FLOAT8OID);
	ids = visible_hooks(0, false, &nids);
	parked = parked_of(ids, nids);
	rows = coco_hook_stats_snapshot(MyDatabaseId, &nrows);
	by_id = hash_by_hook_id("cocohooks hook stats rows", sizeof(StatsById), nrows);
	for (int i = 0; i < nrows; i++)
	{
		StatsById  *e = hash_search(by_id, &rows[i].hook_id, HASH_ENTER, NULL);

		e->row = &rows[i];
	}

	for (int i = 0; i < nids; i++)
	{
		Datum		values[HOOK_COUNTERS_COLS];
		bool		nulls[HOOK_COUNTERS_COLS] = {0};
		StatsById  *e = hash_search(by_id, &ids[i], HASH_FIND, NULL);
		CocoHookStatsRow zero = {0};
		const CocoHookStatsRow *r = e ? e->row : &zero;
		HookParked *p = hash_search(parked, &ids[i], HASH_FIND, NULL);
		TimestampTz oldest = r->oldest_held;
		uint64		samples = 0;
		int64		window_us = (int64) COCO_LATENCY_WINDOW_S * USECS_PER_SEC;

		if (p && (oldest == 0 || p->oldest < oldest))
			oldest = p->oldest;
		for (int b = 0; b < COCO_LATENCY_BUCKETS && r->window_start != 0; b++)
		{
			if (now - r->window_start < 2 * window_us)
				samples += r->latency[0][b];
			if (now - r->window_start < window_us)
				samples += r->latency[1][b];
		}

		values[0] = Int64GetDatum(ids[i]);
		values[1] = Int64GetDatum((int64) r->queued);
		values[2] = Int64GetDatum((int64) r->delivered);
		values[3] = Int64GetDatum((int64) r->failed);
		values[4] = Int64GetDatum((int64) r->dropped);
		values[5] = Int64GetDatum((int64) r->retrying + (p ? p->retrying : 0));
		values[6] = Int64GetDatum(p ? p->parked : 0);
		for (int o = 0; o < COCO_NUM_OUTCOMES; o++)
			values[7 + o] = Int64GetDatum((int64) r->attempts[o]);
		values[14] = TimestampTzGetDatum(r->last_success);
		nulls[14] = (r->last_success == 0);
		values[15] = TimestampTzGetDatum(r->last_failure);
		nulls[15] = (r->last_failure == 0);
		nulls[16] = (r->last_error[0] == '\0');
		values[16] = nulls[16] ? (Datum) 0 : CStringGetTextDatum(r->last_error);
		values[17] = Int64GetDatum((int64) r->consecutive_failures);
		values[18] = percentile_datum(r, 0.50, now, &nulls[18]);
		values[19] = percentile_datum(r, 0.95, now, &nulls[19]);
		values[20] = percentile_datum(r, 0.99, now, &nulls[20]);
		values[21] = Int64GetDatum((int64) samples);
		values[22] = TimestampTzGetDatum(oldest);
		nulls[22] = (oldest == 0);
		values[23] = TimestampTzGetDatum(r->stats_reset);
		nulls[23] = (r->stats_reset == 0);
		values[24] = bounds;
		values[25] = cumulative_buckets(r);
		values[26] = Float8GetDatum(r->latency_sum_s);
		values[27] = Int64GetDatum((int64) r->filter_errors);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * reset_stats(hook_id bigint DEFAULT NULL): zeroes the statistics of the
 * hook, or of every hook the caller may see.
 */
Datum
cocohooks_reset_stats(PG_FUNCTION_ARGS)
{
	bool		one = !PG_ARGISNULL(0);
	int64		hook_id = one ? PG_GETARG_INT64(0) : 0;
	int			n;
	int64	   *ids;

	coco_require_preload();
	ids = visible_hooks(hook_id, one, &n);
	if (one && n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("hook %lld does not exist", (long long) hook_id)));
	for (int i = 0; i < n; i++)
		coco_hook_stats_reset(MyDatabaseId, ids[i]);
	PG_RETURN_VOID();
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
