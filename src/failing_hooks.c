/*-------------------------------------------------------------------------
 *
 * failing_hooks.c
 *	  Since when each hook has been failing: the clock that disables a hook
 *	  nothing is delivered to (cocohooks.disable_failing_hooks_after).
 *
 * A hook is failing since its first failed attempt after its last
 * successful delivery (of any of its events).  The delivery engine tells
 * us of every attempt's outcome (coco_failing_note_failure, _success) and
 * disables the hook once it has been failing for the setting's time
 * (gone_hooks.c does the disabling, as for 410 Gone).
 *
 * The clocks must outlive the worker (restarts happen in five days), but
 * cocohooks.hooks is not the place: a change there invalidates every
 * backend's hook cache.  They are kept in cocohooks.hook_failing, written
 * only on a hook's transitions (its first failure: a row; its first
 * success after it, or its disabling: no row), in the transaction of the
 * worker's next log rows (delivery_log.c calls coco_failing_write), and
 * read back when the worker starts.  enable_hook() deletes a hook's row,
 * so that a hook enabled again starts a fresh clock; the worker notices
 * it when it reads the hooks again after a change (hook_settings.c calls
 * coco_failing_reconcile) and forgets its own copy of that clock.
 *
 * The server log follows the same transitions, so that a receiver down
 * for a day does not flood it (cocohooks.log_failures_every): a hook's
 * first failed attempt gets its full line (retry_policy.c writes it, told
 * by coco_failing_count_attempt), saying the hook is failing; its next
 * ones are only counted, and coco_failing_report writes one line per hook
 * at most every log_failures_every with what was counted; its first
 * success writes "recovered", with the count since it started failing.  A
 * hook the worker disables has its own line (delivery_engine.c); what it
 * had waiting fails for good next, counted the same way until a summary
 * line says how many.  Every failed delivery still has its row in
 * cocohooks.deliveries: the server log is the summary.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- a hook's entry is dirty from its transition until the transaction
 *	  that writes it has committed (coco_failing_written); a failed write
 *	  leaves it dirty, to be written with the next log rows;
 *	- at most MAX_FAILING_HOOKS hooks have a clock (hooks are few): past
 *	  that, a newly failing hook has none, and is not disabled by this
 *	  rule until another's clock ends, which the server log says once;
 *	- before ALTER EXTENSION UPDATE to 0.3.0 there is no table: the clocks
 *	  live in this worker's memory only;
 *	- the counts for the server log live in the same entries (so in the
 *	  same bound; a hook without a clock gets a line per failed attempt);
 *	  nquiet counts the entries with counts not yet in a line, ndisabled
 *	  the entries kept only for those of a disabled hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "mb/pg_wchar.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "failing_hooks.h"
#include "settings.h"
#include "sql_array.h"

#define MAX_FAILING_HOOKS	10000
#define LAST_ERROR_LEN		160 /* of an error, in a summary line */
#define REPORT_CHECK_MS		1000	/* how often summaries are looked for */

typedef struct FailingHook
{
	int64		hook_id;		/* hash key */
	TimestampTz failing_since;	/* 0: not failing (its row is to go) */
	bool		dirty;			/* changed since its row was written */
	bool		persisted;		/* its row is in the table (as far as we know) */
	/* the server log's account, this worker's only */
	bool		announced;		/* its first failure's line is written */
	bool		disabled;		/* disabled by the worker, not failing again */
	TimestampTz line_at;		/* its last line */
	int64		failed_attempts;	/* since failing_since */
	int64		failed_for_good;	/* deliveries, since failing_since */
	int64		quiet_attempts; /* not in a line yet */
	int64		quiet_for_good; /* not in a line yet */
	char		last_error[LAST_ERROR_LEN];
} FailingHook;

static HTAB *failing = NULL;
static int	ndirty = 0;
static bool warned_full = false;
static int	nquiet = 0;
static int	ndisabled = 0;
static TimestampTz report_checked = 0;

/* In a transaction: cocohooks.hook_failing's oid, InvalidOid if none. */
static Oid
failing_table(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);

	return OidIsValid(nsp) ? get_relname_relid("hook_failing", nsp) : InvalidOid;
}

static void
mark_dirty(FailingHook *f)
{
	if (!f->dirty)
		ndirty++;
	f->dirty = true;
}

/* A new entry: everything but its hook id zero (no clock, no counts). */
static void
clear_entry(FailingHook *f)
{
	memset(((char *) f) + sizeof(int64), 0, sizeof(FailingHook) - sizeof(int64));
}

/* The failures counted since the hook's last line, if any: one line. */
static void
report_line(FailingHook *f, TimestampTz now)
{
	long		secs;
	int			usecs;

	if (f->quiet_attempts == 0 && f->quiet_for_good == 0)
		return;
	TimestampDifference(f->line_at, now, &secs, &usecs);
	if (f->disabled)
		ereport(LOG,
				(errmsg("cocohooks hook %lld is disabled: %lld more deliveries failed for good in the last %ld s",
						(long long) f->hook_id, (long long) f->quiet_for_good, secs),
				 errdetail("The last error: %s. They are in cocohooks.deliveries, with their payload; once the hook is enabled again, redeliver_failed() sends them.",
						   f->last_error)));
	else
	{
		char	   *since = pstrdup(timestamptz_to_str(f->failing_since));

		ereport(LOG,
				(errmsg("cocohooks hook %lld is still failing: %lld attempts failed and %lld deliveries failed for good in the last %ld s",
						(long long) f->hook_id, (long long) f->quiet_attempts,
						(long long) f->quiet_for_good, secs),
				 errdetail("Failing since %s: %lld attempts failed and %lld deliveries failed for good since then. The last error: %s. Failed deliveries are in cocohooks.deliveries.",
						   since, (long long) f->failed_attempts,
						   (long long) f->failed_for_good, f->last_error)));
		pfree(since);
	}
	f->quiet_attempts = 0;
	f->quiet_for_good = 0;
	f->line_at = now;
	nquiet--;
}

/* The hook starts failing afresh, or stopped: its counts start from 0. */
static void
forget_counts(FailingHook *f)
{
	if (f->quiet_attempts > 0 || f->quiet_for_good > 0)
		nquiet--;
	f->announced = false;
	f->failed_attempts = 0;
	f->failed_for_good = 0;
	f->quiet_attempts = 0;
	f->quiet_for_good = 0;
	f->last_error[0] = '\0';
}

/*
 * At worker start, outside a transaction: the clocks a previous worker
 * left.  A failed read is reported; the clocks then start afresh.
 */
void
coco_failing_init(void)
{
	HASHCTL		ctl = {0};
	MemoryContext cxt = CurrentMemoryContext;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(FailingHook);
	failing = hash_create("cocohooks failing hooks", 64, &ctl, HASH_ELEM | HASH_BLOBS);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		Oid			relid;

		PushActiveSnapshot(GetTransactionSnapshot());
		relid = failing_table();
		if (OidIsValid(relid))
		{
			Relation	rel = table_open(relid, AccessShareLock);
			TupleDesc	desc = RelationGetDescr(rel);
			TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
			HeapTuple	tup;

			while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)) &&
				   hash_get_num_entries(failing) < MAX_FAILING_HOOKS)
			{
				bool		isnull;
				int64		id = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
				FailingHook *f = hash_search(failing, &id, HASH_ENTER, NULL);

				clear_entry(f);
				f->failing_since = DatumGetTimestampTz(heap_getattr(tup, 2, desc, &isnull));
				f->persisted = true;
			}
			table_endscan(scan);
			table_close(rel, AccessShareLock);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * An attempt to deliver to the hook failed at now: since when it has been
 * failing, or 0 if it has no clock (past MAX_FAILING_HOOKS).
 */
TimestampTz
coco_failing_note_failure(int64 hook_id, TimestampTz now)
{
	FailingHook *f;
	bool		found;

	f = hash_search(failing, &hook_id, HASH_FIND, NULL);
	if (f == NULL)
	{
		if (hash_get_num_entries(failing) >= MAX_FAILING_HOOKS)
		{
			if (!warned_full)
				ereport(LOG,
						(errmsg("cocohooks keeps no failure clock for hook %lld: %d hooks are failing already",
								(long long) hook_id, MAX_FAILING_HOOKS),
						 errdetail("It is not disabled by cocohooks.disable_failing_hooks_after until a failing hook succeeds or is disabled.")));
			warned_full = true;
			return 0;
		}
		f = hash_search(failing, &hook_id, HASH_ENTER, &found);
		clear_entry(f);
	}
	if (f->failing_since == 0)
	{
		/* failing again after a success, or enabled again after disabling */
		if (f->disabled)
		{
			report_line(f, now);
			f->disabled = false;
			ndisabled--;
		}
		forget_counts(f);
		f->failing_since = now;
		mark_dirty(f);
	}
	return f->failing_since;
}

/*
 * A delivery to the hook succeeded: its clock stops (and starts afresh at
 * its next failure), and the server log says it recovered, with the count
 * of what failed meanwhile.
 */
void
coco_failing_note_success(int64 hook_id)
{
	FailingHook *f;
	char	   *since;

	if (hash_get_num_entries(failing) == 0)
		return;
	f = hash_search(failing, &hook_id, HASH_FIND, NULL);
	if (f == NULL || f->failing_since == 0)
		return;
	since = pstrdup(timestamptz_to_str(f->failing_since));
	ereport(LOG,
			(errmsg("cocohooks hook %lld recovered: %lld attempts failed since %s",
					(long long) hook_id, (long long) f->failed_attempts, since),
			 errdetail("Deliveries that failed for good meanwhile: %lld; they are in cocohooks.deliveries, and redeliver_failed() sends them again.",
					   (long long) f->failed_for_good)));
	pfree(since);
	forget_counts(f);
	f->failing_since = 0;
	mark_dirty(f);
}

/*
 * The worker disabled the hook (its own line says so): its clock stops,
 * and the deliveries it had waiting, which fail for good next, are counted
 * for one summary line rather than a line each.
 */
void
coco_failing_note_disabled(int64 hook_id)
{
	FailingHook *f;
	bool		found;

	f = hash_search(failing, &hook_id, HASH_FIND, NULL);
	if (f == NULL)
	{
		if (hash_get_num_entries(failing) >= MAX_FAILING_HOOKS)
			return;
		f = hash_search(failing, &hook_id, HASH_ENTER, &found);
		clear_entry(f);
	}
	if (f->failing_since != 0)
	{
		f->failing_since = 0;
		mark_dirty(f);
	}
	if (!f->disabled)
		ndisabled++;
	f->disabled = true;
	f->line_at = GetCurrentTimestamp();
}

/*
 * A failed attempt of a delivery to the hook (for_good: the delivery
 * failed for good with it), and its error: whether it gets a line of its
 * own, and if it is the hook's first since it started failing, since when
 * (*since).  Every other failure of a failing or disabled hook is counted
 * for coco_failing_report's next line.
 */
CocoFailureLine
coco_failing_count_attempt(int64 hook_id, bool for_good, const char *error,
						   TimestampTz *since)
{
	FailingHook *f;

	if (hash_get_num_entries(failing) == 0)
		return COCO_LINE_EACH;
	f = hash_search(failing, &hook_id, HASH_FIND, NULL);
	if (f == NULL || (f->failing_since == 0 && !f->disabled))
		return COCO_LINE_EACH;
	if (f->failing_since != 0)
	{
		f->failed_attempts++;
		if (for_good)
			f->failed_for_good++;
	}
	if (cocohooks_log_failures_every <= 0)
		return COCO_LINE_EACH;
	if (f->failing_since != 0 && !f->announced)
	{
		f->announced = true;
		f->line_at = GetCurrentTimestamp();
		*since = f->failing_since;
		return COCO_LINE_FIRST;
	}
	if (f->quiet_attempts == 0 && f->quiet_for_good == 0)
		nquiet++;
	f->quiet_attempts++;
	if (for_good)
		f->quiet_for_good++;
	strlcpy(f->last_error, error, pg_mbcliplen(error, strlen(error), LAST_ERROR_LEN - 1) + 1);
	return COCO_LINE_COUNTED;
}

/*
 * Writes the summary lines that are due: one per hook with failures
 * counted since its last line, once log_failures_every has gone by since
 * that line; and forgets disabled hooks with nothing left to say.  Looks
 * at most every REPORT_CHECK_MS.  In the worker's loop, in any memory
 * context.
 */
void
coco_failing_report(void)
{
	TimestampTz now;
	HASH_SEQ_STATUS seq;
	FailingHook *f;

	if (failing == NULL || (nquiet == 0 && ndisabled == 0))
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(report_checked, now, REPORT_CHECK_MS))
		return;
	report_checked = now;
	hash_seq_init(&seq, failing);
	while ((f = hash_seq_search(&seq)) != NULL)
	{
		if (!TimestampDifferenceExceeds(f->line_at, now,
										cocohooks_log_failures_every * 1000))
			continue;
		report_line(f, now);
		/* a disabled hook's entry goes once its last count is told */
		if (f->disabled && f->failing_since == 0 && !f->dirty)
		{
			ndisabled--;
			hash_search(failing, &f->hook_id, HASH_REMOVE, NULL);
		}
	}
}

/* Milliseconds until coco_failing_report has work, -1 if none waits. */
long
coco_failing_report_timeout_ms(void)
{
	return (nquiet > 0 || ndisabled > 0) ? REPORT_CHECK_MS : -1;
}

/* Whether some clock changed since the last write. */
bool
coco_failing_dirty(void)
{
	return ndirty > 0;
}

/*
 * Writes the changed clocks; in the worker's log transaction, SPI
 * connected (delivery_log.c).  Also deletes the rows of hooks that no
 * longer exist.  Raises errors.
 */
void
coco_failing_write(void)
{
	HASH_SEQ_STATUS seq;
	FailingHook *f;
	Datum	   *ids;
	Datum	   *since;
	Datum	   *gone;
	int			nset = 0;
	int			ngone = 0;
	Oid			types[2] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[2];

	if (ndirty == 0 || !OidIsValid(failing_table()))
		return;
	ids = palloc(sizeof(Datum) * ndirty);
	since = palloc(sizeof(Datum) * ndirty);
	gone = palloc(sizeof(Datum) * ndirty);
	hash_seq_init(&seq, failing);
	while ((f = hash_seq_search(&seq)) != NULL)
	{
		if (!f->dirty)
			continue;
		if (f->failing_since != 0)
		{
			ids[nset] = Int64GetDatum(f->hook_id);
			since[nset++] = TimestampTzGetDatum(f->failing_since);
		}
		else
			gone[ngone++] = Int64GetDatum(f->hook_id);
	}
	if (nset > 0)
	{
		args[0] = coco_sql_array(ids, NULL, nset, INT8OID);
		args[1] = coco_sql_array(since, NULL, nset, TIMESTAMPTZOID);
		if (SPI_execute_with_args("INSERT INTO cocohooks.hook_failing (hook_id, failing_since) "
								  "SELECT h, s FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(h, s) "
								  "ON CONFLICT (hook_id) DO UPDATE SET failing_since = excluded.failing_since",
								  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into cocohooks.hook_failing");
	}
	args[0] = coco_sql_array(gone, NULL, ngone, INT8OID);
	if (SPI_execute_with_args("DELETE FROM cocohooks.hook_failing f "
							  "WHERE f.hook_id = ANY ($1) OR NOT EXISTS "
							  "(SELECT FROM cocohooks.hooks h WHERE h.id = f.hook_id)",
							  1, types, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from cocohooks.hook_failing");
}

/* What coco_failing_write wrote has committed. */
void
coco_failing_written(void)
{
	HASH_SEQ_STATUS seq;
	FailingHook *f;

	if (ndirty == 0)
		return;
	hash_seq_init(&seq, failing);
	while ((f = hash_seq_search(&seq)) != NULL)
	{
		if (!f->dirty)
			continue;
		f->dirty = false;
		f->persisted = (f->failing_since != 0);
		/* a disabled hook's entry stays for its counts (coco_failing_report) */
		if (f->failing_since == 0 && !f->disabled)
			hash_search(failing, &f->hook_id, HASH_REMOVE, NULL);
	}
	ndirty = 0;
}

static int
compare_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Forgets the clocks whose rows someone else deleted (enable_hook()): the
 * hook starts a fresh clock at its next failure.  In a transaction with a
 * snapshot (hook_settings.c's read of the catalog).
 */
void
coco_failing_reconcile(void)
{
	Oid			relid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	int64	   *rows;
	int			nrows = 0;
	int			maxrows = 64;
	HASH_SEQ_STATUS seq;
	FailingHook *f;

	if (failing == NULL || hash_get_num_entries(failing) == 0)
		return;
	relid = failing_table();
	if (!OidIsValid(relid))
		return;
	rows = palloc(sizeof(int64) * maxrows);
	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		bool		isnull;

		if (nrows == maxrows)
		{
			maxrows *= 2;
			rows = repalloc(rows, sizeof(int64) * maxrows);
		}
		rows[nrows++] = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	qsort(rows, nrows, sizeof(int64), compare_int64);

	hash_seq_init(&seq, failing);
	while ((f = hash_seq_search(&seq)) != NULL)
		if (f->persisted && !f->dirty &&
			bsearch(&f->hook_id, rows, nrows, sizeof(int64), compare_int64) == NULL)
		{
			forget_counts(f);
			hash_search(failing, &f->hook_id, HASH_REMOVE, NULL);
		}
	pfree(rows);
}
