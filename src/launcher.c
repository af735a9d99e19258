/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  Starts one worker per database that has the extension.
 *
 * The launcher is a background worker started with the server and
 * connected to no database.  A database's worker is started when the
 * database's dbslot in shared memory (db_slots.c) wants one:
 *
 *	at server start, every database (templates, and any left invalid by an
 *	interrupted DROP DATABASE, aside) gets a wanted dbslot in turn, as far
 *	as cocohooks.max_databases allows; its worker looks whether the
 *	extension is installed there, and if not frees the dbslot and exits,
 *	making room for the next database to look at;
 *
 *	later, a backend makes its database's dbslot wanted when CREATE
 *	EXTENSION commits, and when its database has none (its first event or
 *	wait_for_deliveries() after a restart), and sets the launcher's latch.
 *
 * A worker that dies is started again after a second, unless its dbslot
 * was freed (DROP EXTENSION: the worker frees it as it goes) or is stopped
 * (database_pause.c: DROP DATABASE, or a statement that needs the
 * database to itself, stops the worker first).  A worker whose database no
 * longer exists is not started again; its dbslot is freed, and so are the
 * replication slot and the saved events it may have left.
 *
 * The launcher sleeps on its latch, which backends and the postmaster (a
 * worker started or stopped) set, and looks at least once a second.
 *
 * Runs in: the launcher; the postmaster registers it (_PG_init, at
 * preload).
 *
 * Invariants:
 *	- only the launcher starts workers, one per wanted dbslot; it moves a
 *	  dbslot between wanted and running only from the state it just saw
 *	  (coco_dbslot_set_state's only_if), so a backend's change wins;
 *	- it frees a dbslot only when the database no longer exists;
 *	- what outlives one look (the workers started, their handles, the
 *	  databases still to look at) is in launcher_cxt, where each look
 *	  runs; pg_database is read in a short transaction of its own;
 *	- it keeps nothing a restarted launcher needs: a running worker is
 *	  found again by its pid in the dbslot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "db_slots.h"
#include "event_store.h"
#include "hook_stats.h"
#include "launcher.h"
#include "pg_compat.h"
#include "settings.h"
#include "wal_slot.h"
#include "worker.h"

#define RESTART_DELAY_MS	1000
#define LOOK_INTERVAL_MS	1000

typedef struct LaunchedWorker
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;	/* NULL: not started */
	TimestampTz not_before;		/* no start before this */
	bool		warned;			/* could not start: said so once */
} LaunchedWorker;

static LaunchedWorker *launched = NULL;
static int	nlaunched = 0;

/* databases still to look at after the server started */
static Oid *to_probe = NULL;
static int	nto_probe = 0;
static bool warned_full = false;

void
coco_launcher_register(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cocohooks");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cocohooks_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cocohooks launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cocohooks launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * The databases (not templates, unless with_templates), from pg_database:
 * their oids into *oids (palloc'd in the current context); returns how
 * many.  One that does not allow connections counts (its worker connects
 * all the same: ALLOW_CONNECTIONS false must not lose its dbslot or events);
 * one left invalid by an interrupted DROP DATABASE does not.
 */
static int
list_databases(Oid **oids, bool with_templates)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			n = 0;
	int			max = 16;
	MemoryContext caller = CurrentMemoryContext;

	*oids = palloc(sizeof(Oid) * max);
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (database_is_invalid_form(db) || (db->datistemplate && !with_templates))
			continue;
		if (n == max)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			max *= 2;
			*oids = repalloc(*oids, sizeof(Oid) * max);
			MemoryContextSwitchTo(old);
		}
		(*oids)[n++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return n;
}

static bool
database_exists(Oid dboid)
{
	Oid		   *oids;
	int			n = list_databases(&oids, true);
	bool		found = false;

	for (int i = 0; i < n && !found; i++)
		found = (oids[i] == dboid);
	pfree(oids);
	return found;
}

static LaunchedWorker *
launched_for(Oid dboid, bool create)
{
	for (int i = 0; i < nlaunched; i++)
		if (launched[i].dboid == dboid)
			return &launched[i];
	if (!create)
		return NULL;
	launched = repalloc(launched, sizeof(LaunchedWorker) * (nlaunched + 1));
	memset(&launched[nlaunched], 0, sizeof(LaunchedWorker));
	launched[nlaunched].dboid = dboid;
	return &launched[nlaunched++];
}

static void
forget_launched(LaunchedWorker *lw)
{
	if (lw->handle)
		pfree(lw->handle);
	*lw = launched[--nlaunched];
}

/* Gives databases not looked at yet a dbslot, as far as dbslots are free. */
static void
probe_more(void)
{
	while (nto_probe > 0)
	{
		bool		created;

		if (coco_dbslot_ensure(to_probe[nto_probe - 1], COCO_DBSLOT_WANTED, &created) == NULL)
			break;
		nto_probe--;
	}
}

/* Starts the worker of a wanted dbslot; false if it could not now. */
static bool
start_worker(CocoDbSlotInfo *slot, LaunchedWorker *lw)
{
	if (!database_exists(slot->dboid))
	{
		/* dropped while it had no worker: nothing may stay behind */
		coco_dbslot_free(slot->dboid, -1);
		coco_wal_slot_drop_of(slot->dboid, "its database was dropped");
		coco_store_remove_for(slot->dboid);
		coco_hook_stats_forget(slot->dboid);
		forget_launched(lw);
		return false;
	}
	if (!coco_worker_start(slot->dboid, &lw->handle))
	{
		if (!lw->warned)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("cocohooks could not start the worker of database %u",
							slot->dboid),
					 errdetail("No background worker slot is free; it is tried again every second."),
					 errhint("Raise \"%s\" to leave room for one cocohooks worker per database, besides the launcher.",
							 "max_worker_processes")));
		lw->warned = true;
		lw->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RESTART_DELAY_MS);
		return false;
	}
	lw->warned = false;
	(void) coco_dbslot_set_state(slot->dboid, COCO_DBSLOT_RUNNING, COCO_DBSLOT_WANTED);
	return true;
}

/* One look at every dbslot: start what is wanted, notice what stopped. */
static void
look_at_slots(void)
{
	CocoDbSlotInfo *slots = palloc(sizeof(CocoDbSlotInfo) * coco_dbslot_count());
	int			n;
	TimestampTz now = GetCurrentTimestamp();

	probe_more();
	n = coco_dbslot_list(slots, coco_dbslot_count());

	/*
	 * Databases left to look at while every dbslot has a working worker:
	 * more databases have the extension than cocohooks.max_databases
	 * allows (it was lowered), and nothing would say so.
	 */
	if (nto_probe > 0 && n == coco_dbslot_count() && !warned_full)
	{
		bool		all_served = true;

		for (int j = 0; j < n && all_served; j++)
			all_served = (slots[j].state == COCO_DBSLOT_RUNNING && slots[j].worker_pid != 0);
		if (all_served)
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("cocohooks cannot look for the extension in %d more databases",
							nto_probe),
					 errdetail("All %d slots that \"%s\" allows are taken by databases with the extension; hooks in the others are not delivered.",
							   n, "cocohooks.max_databases"),
					 errhint("Raise \"%s\" and restart the server.", "cocohooks.max_databases")));
			warned_full = true;
		}
	}

	/* workers of dbslots that are gone, or that stopped */
	for (int i = nlaunched - 1; i >= 0; i--)
	{
		LaunchedWorker *lw = &launched[i];
		CocoDbSlotInfo *slot = NULL;
		pid_t		pid;

		for (int j = 0; j < n; j++)
			if (slots[j].dboid == lw->dboid)
				slot = &slots[j];
		if (lw->handle &&
			GetBackgroundWorkerPid(lw->handle, &pid) == BGWH_STOPPED)
		{
			pfree(lw->handle);
			lw->handle = NULL;
			if (slot && slot->state == COCO_DBSLOT_RUNNING)
			{
				/* it died: again in a second */
				(void) coco_dbslot_set_state(lw->dboid, COCO_DBSLOT_WANTED, COCO_DBSLOT_RUNNING);
				slot->state = COCO_DBSLOT_WANTED;
				lw->not_before = TimestampTzPlusMilliseconds(now, RESTART_DELAY_MS);
			}
		}
		if (slot == NULL && lw->handle == NULL)
			forget_launched(lw);
	}

	for (int j = 0; j < n; j++)
	{
		LaunchedWorker *lw;

		/* a worker a previous launcher started, gone since */
		if (slots[j].state == COCO_DBSLOT_RUNNING && slots[j].worker_pid == 0 &&
			((lw = launched_for(slots[j].dboid, false)) == NULL || lw->handle == NULL))
		{
			(void) coco_dbslot_set_state(slots[j].dboid, COCO_DBSLOT_WANTED, COCO_DBSLOT_RUNNING);
			slots[j].state = COCO_DBSLOT_WANTED;
		}
		if (slots[j].state != COCO_DBSLOT_WANTED)
			continue;
		lw = launched_for(slots[j].dboid, true);
		if (lw->handle != NULL || lw->not_before > now)
			continue;
		(void) start_worker(&slots[j], lw);
	}
	pfree(slots);
}

/* Milliseconds until the launcher must look again. */
static long
next_look_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		ms = LOOK_INTERVAL_MS;

	for (int i = 0; i < nlaunched; i++)
		if (launched[i].handle == NULL && launched[i].not_before > now)
			ms = Min(ms, TimestampDifferenceMilliseconds(now, launched[i].not_before) + 1);
	return ms;
}

static void
forget_launcher(int code, Datum arg)
{
	coco_dbslot_set_launcher(-1);
}

void
cocohooks_launcher_main(Datum main_arg)
{
	MemoryContext launcher_cxt;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("cocohooks launcher");

	launcher_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks launcher",
										 ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(launcher_cxt, "cocohooks launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(launcher_cxt);
	launched = palloc(sizeof(LaunchedWorker));

	if (cocohooks_database != NULL && cocohooks_database[0] != '\0')
		ereport(WARNING,
				(errmsg("\"%s\" is ignored", "cocohooks.database"),
				 errdetail("Every database with the extension has its own worker."),
				 errhint("Remove \"%s\" from the configuration.", "cocohooks.database")));

	/* replication slots of databases that are gone go */
	{
		Oid		   *all;
		int			nall = list_databases(&all, true);

		coco_wal_slot_drop_orphans(all, nall);
		pfree(all);
	}

	/*
	 * Every database is looked at once; templates are not (a worker
	 * connected to one would make CREATE DATABASE wait): one that has the
	 * extension gets its worker with its first event.
	 */
	nto_probe = list_databases(&to_probe, false);
	ereport(LOG,
			(errmsg("cocohooks launcher started: looking for the extension in %d databases",
					nto_probe)));

	coco_dbslot_set_launcher(coco_my_procno());
	before_shmem_exit(forget_launcher, (Datum) 0);

	for (;;)
	{
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(launcher_cxt);
		look_at_slots();
		MemoryContextSwitchTo(loop_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 next_look_ms(), PG_WAIT_EXTENSION);
	}
}
