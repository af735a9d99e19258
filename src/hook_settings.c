/*-------------------------------------------------------------------------
 *
 * hook_settings.c
 *	  The worker's copy of the hooks' settings, read from cocohooks.hooks.
 *
 * A message carries what its hooks were when its row was written, in a
 * layout that cannot grow (cocohooks.h).  What the worker must know of a
 * hook beyond that, or as it is now rather than as it was, it reads here
 * from the catalog: each hook's retry_for (when its retries stop), and its
 * secrets (handed row by row to signing_keys.c).  One read of the catalog
 * serves them all, and the clocks of failing hooks are checked against
 * cocohooks.hook_failing in the same transaction (failing_hooks.c).
 *
 * A transaction that changes cocohooks.hooks bumps the hooks generation
 * (signing_keys.c's commit callback, worker_marks.c); the next refresh
 * sees it and reads the catalog again, as it does at the latest every few
 * seconds (a prepared transaction commits elsewhere, without our
 * callback).  Lookups are hash probes: no catalog access per attempt.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- the catalog is read only between transactions, in a short one of
 *	  its own, into settings_cxt, replaced whole each time;
 *	- a failed read is reported, not raised: until a later refresh reads
 *	  the catalog, no hook has a retry_for (its retries are bounded by
 *	  max_retries, or by disabling) and requests are signed with the
 *	  messages' own keys;
 *	- a hook missing from the catalog (unregistered) retries for a day.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "failing_hooks.h"
#include "hook_settings.h"
#include "hooks_catalog.h"
#include "pg_compat.h"
#include "signing_keys.h"
#include "worker_marks.h"

#define MAX_AGE_MS	5000

/* the retry_for of an unregistered hook's last events: register_hook's default */
#define UNREGISTERED_RETRY_FOR_MS	((int64) 24 * 3600 * 1000)

/* a retry_for longer than this (about 100 years) counts as none */
#define RETRY_FOR_MAX_MS	((int64) 100 * 365 * 24 * 3600 * 1000)

typedef struct HookSettings
{
	int64		hook_id;		/* hash key */
	int64		retry_for_ms;	/* -1: no time limit */
} HookSettings;

static HTAB *settings = NULL;
static MemoryContext settings_cxt = NULL;
static bool loaded = false;
static uint32 loaded_generation = 0;
static TimestampTz loaded_at = 0;

/* An interval in milliseconds, a month counted as 30 days; -1 if not finite. */
static int64
interval_ms(const Interval *i)
{
	double		ms;

	if (INTERVAL_NOT_FINITE(i))
		return -1;
	ms = (double) i->time / 1000.0 +
		((double) i->month * DAYS_PER_MONTH + (double) i->day) * SECS_PER_DAY * 1000.0;
	if (ms > (double) RETRY_FOR_MAX_MS)
		return -1;
	return Max((int64) ms, 0);
}

/* Reads every hook's settings; inside a transaction. */
static void
load_settings(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("hooks", nsp) : InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	HASHCTL		ctl;

	MemoryContextReset(settings_cxt);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(HookSettings);
	ctl.hcxt = settings_cxt;
	settings = hash_create("cocohooks hook settings", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	coco_signing_keys_reset();
	if (!OidIsValid(relid))
		return;

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		bool		isnull;
		Datum		value;
		int64		id;
		HookSettings *h;

		value = coco_hooks_attr(tup, desc, Anum_hooks_id, &isnull);
		if (isnull)
			continue;
		id = DatumGetInt64(value);
		h = hash_search(settings, &id, HASH_ENTER, NULL);
		value = coco_hooks_attr(tup, desc, Anum_hooks_retry_for, &isnull);
		h->retry_for_ms = isnull ? -1 : interval_ms(DatumGetIntervalP(value));
		coco_signing_keys_load_row(id, tup, desc);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	coco_failing_reconcile();
}

/*
 * Reads the hooks again if a change committed since, or if what we have
 * is a few seconds old.  Call in the worker, outside any transaction.
 */
void
coco_hook_settings_refresh(void)
{
	uint32		generation = coco_marks_hooks_generation();
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;

	if (loaded && generation == loaded_generation &&
		!TimestampDifferenceExceeds(loaded_at, now, MAX_AGE_MS))
		return;
	if (IsTransactionState())
		return;					/* only ever between transactions */
	if (settings_cxt == NULL)
		settings_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks hook settings",
											 ALLOCSET_SMALL_SIZES);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		load_settings();
		PopActiveSnapshot();
		CommitTransactionCommand();
		loaded = true;
	}
	PG_CATCH();
	{
		/* no retry_for and the messages' own keys meanwhile; try again later */
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		settings = NULL;
		coco_signing_keys_forget();
		loaded = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	loaded_generation = generation;
	loaded_at = now;
}

/*
 * The hook's retry_for in milliseconds as of the last refresh; -1 if it
 * has none (NULL, or the catalog could not be read).  A hook no longer in
 * the catalog (unregistered) retries its last events for the default day:
 * nothing could disable it, and its retries would never end.
 */
int64
coco_hook_retry_for_ms(int64 hook_id)
{
	HookSettings *h;

	if (settings == NULL)
		return -1;
	h = hash_search(settings, &hook_id, HASH_FIND, NULL);
	return h ? h->retry_for_ms : UNREGISTERED_RETRY_FOR_MS;
}
