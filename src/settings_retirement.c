/*-------------------------------------------------------------------------
 *
 * settings_retirement.c
 *	  Forgetting a hook's old settings once no event can name them.
 *
 * A change to a hook's settings, or unregistering it, keeps the settings
 * it replaces in cocohooks.hook_versions (a trigger of the catalog), as
 * events written before may name them (cocohooks.h).  The worker deletes
 * such a row once no event can name it any more:
 *	1. every transaction running when the worker first saw the row has
 *	   ended (a writer may have read the old settings before the change
 *	   committed, and write its events after); then the version is closed:
 *	   every event naming it is in the ring before the ring's head and in
 *	   the WAL before the WAL's insert position of that moment;
 *	2. the worker has taken everything the ring held then, a previous
 *	   worker's saved events and its own popped ones, and no WAL before that
 *	   position can be read again, after a crash or on a promoted standby
 *	   (wal_source.c);
 *	3. no delivery to the hook is unfinished in memory, and none is parked
 *	   in cocohooks.retry_queue (checked in the DELETE itself).
 * A step runs at most once a second, and only while the table has rows.
 *
 * Runs in: the worker, between transactions.
 *
 * Invariants:
 *	- what is known of each row is kept in retire_cxt, and forgotten with
 *	  the row (a worker that starts again starts each row afresh, at 1);
 *	- errors are reported, not raised: the rows wait for a later step.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "delivery_engine.h"
#include "event_ring.h"
#include "hook_settings.h"
#include "own_transaction.h"
#include "saved_events.h"
#include "settings_retirement.h"
#include "wal_source.h"

#define STEP_INTERVAL_MS	1000

typedef struct Retiring
{
	CocoSettingsKey key;		/* hash key */
	bool		seen;			/* in the table at the last read */
	bool		closed;
	int			nvxids;			/* transactions to wait for (1.) */
	VirtualTransactionId *vxids;
	uint64		ring_head;		/* at closing */
	uint64		wal_insert;
} Retiring;

static HTAB *retiring = NULL;
static MemoryContext retire_cxt = NULL;
static TimestampTz next_step = 0;

/* 1.: the transactions running now, which may have read the old settings */
static void
start_waiting(Retiring *r)
{
	int			n;
	VirtualTransactionId *running = GetCurrentVirtualXIDs(InvalidTransactionId, false,
														  false, 0, &n);

	r->closed = false;
	r->nvxids = n;
	r->vxids = MemoryContextAlloc(retire_cxt, sizeof(VirtualTransactionId) * Max(n, 1));
	memcpy(r->vxids, running, sizeof(VirtualTransactionId) * n);
	pfree(running);
}

/* 1.: closes r once the transactions it waits for have ended */
static void
try_close(Retiring *r)
{
	int			left = 0;

	for (int i = 0; i < r->nvxids; i++)
		if (!VirtualXactLock(r->vxids[i], false))
			r->vxids[left++] = r->vxids[i];
	r->nvxids = left;
	if (left > 0)
		return;
	{
		uint64		tail;

		coco_ring_positions(&r->ring_head, &tail);
	}
	r->wal_insert = GetXLogInsertRecPtr();
	r->closed = true;
}

/* 2. and the in-memory half of 3. */
static bool
nothing_names(const Retiring *r, bool popped_waiting)
{
	uint64		head;
	uint64		tail;

	coco_ring_positions(&head, &tail);
	return tail >= r->ring_head && !popped_waiting &&
		!coco_saved_events_waiting() &&
		coco_wal_source_read_for_good(r->wal_insert) &&
		!coco_engine_uses_hook(r->key.hook_id);
}

/* Deletes r's row unless a parked delivery still names the hook; SPI connected. */
static bool
forget(const Retiring *r)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		args[2];

	args[0] = Int64GetDatum(r->key.hook_id);
	args[1] = Int32GetDatum((int32) r->key.settings_version);
	if (SPI_execute_with_args("DELETE FROM cocohooks.hook_versions v "
							  "WHERE v.hook_id = $1 AND v.settings_version = $2 "
							  "AND NOT EXISTS (SELECT FROM cocohooks.retry_queue q "
							  "                WHERE q.hook_id = v.hook_id)",
							  2, types, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from cocohooks.hook_versions");
	if (SPI_processed > 0)
		ereport(DEBUG1,
				(errmsg("cocohooks forgot settings version %u of hook %lld: no event names it",
						r->key.settings_version, (long long) r->key.hook_id)));
	return SPI_processed > 0;
}

typedef struct StepArgs
{
	const CocoSettingsKey *keys;
	int			nkeys;
	bool		popped_waiting;
} StepArgs;

/* One step; in a transaction of its own. */
static void
step(void *arg)
{
	const StepArgs *a = (const StepArgs *) arg;
	const CocoSettingsKey *keys = a->keys;
	int			nkeys = a->nkeys;
	bool		popped_waiting = a->popped_waiting;
	HASH_SEQ_STATUS seq;
	Retiring   *r;
	bool		connected = false;

	hash_seq_init(&seq, retiring);
	while ((r = hash_seq_search(&seq)) != NULL)
		r->seen = false;
	for (int i = 0; i < nkeys; i++)
	{
		bool		found;

		r = hash_search(retiring, &keys[i], HASH_ENTER, &found);
		if (!found)
			start_waiting(r);
		r->seen = true;
	}

	hash_seq_init(&seq, retiring);
	while ((r = hash_seq_search(&seq)) != NULL)
	{
		bool		gone = !r->seen;

		if (!gone && !r->closed)
			try_close(r);
		if (!gone && r->closed && nothing_names(r, popped_waiting))
		{
			if (!connected)
			{
				if (SPI_connect() != SPI_OK_CONNECT)
					elog(ERROR, "SPI_connect failed");
				connected = true;
			}
			gone = forget(r);
		}
		if (gone)
		{
			pfree(r->vxids);
			hash_search(retiring, &r->key, HASH_REMOVE, NULL);
		}
	}
	if (connected)
		SPI_finish();
}

/*
 * One step of forgetting old settings, at most once a second.
 * popped_waiting: the worker holds events popped from the ring and not
 * started yet.  Call in the worker, outside any transaction.
 */
void
coco_settings_retirement_step(bool popped_waiting)
{
	const CocoSettingsKey *keys;
	int			nkeys;
	TimestampTz now = GetCurrentTimestamp();

	if (now < next_step || IsTransactionState())
		return;
	next_step = TimestampTzPlusMilliseconds(now, STEP_INTERVAL_MS);
	coco_hook_settings_refresh();
	nkeys = coco_hook_settings_retired(&keys);
	if (nkeys == 0 && (retiring == NULL || hash_get_num_entries(retiring) == 0))
		return;
	if (retiring == NULL)
	{
		HASHCTL		ctl;

		retire_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks settings retirement",
										   ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(CocoSettingsKey);
		ctl.entrysize = sizeof(Retiring);
		ctl.hcxt = retire_cxt;
		retiring = hash_create("cocohooks retiring settings", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	{
		StepArgs	args = {.keys = keys,.nkeys = nkeys,.popped_waiting = popped_waiting};

		(void) coco_in_own_transaction(step, &args);
	}
}

/* Milliseconds until the next step is due, -1 while no row waits. */
long
coco_settings_retirement_timeout_ms(void)
{
	const CocoSettingsKey *keys;

	if (coco_hook_settings_retired(&keys) == 0 &&
		(retiring == NULL || hash_get_num_entries(retiring) == 0))
		return -1;
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_step), 0);
}
