/*-------------------------------------------------------------------------
 *
 * wal_slot.c
 *	  The replication slot that keeps the WAL of a database's events
 *	  (cocohooks.durability = wal): its name, its making, its restart
 *	  point, its dropping.
 *
 * Runs in every kind of process cocohooks has:
 *
 *	postmaster	at start, removes the slots the server would refuse to
 *				start with (coco_wal_slot_remove_unusable);
 *	backend		CREATE EXTENSION makes the slot, DROP EXTENSION (or an
 *				aborted CREATE) and DROP DATABASE drop it;
 *	launcher	drops the slots of databases that are gone;
 *	worker		takes the slot over, moves its restart point up as events
 *				finish, saves it, and drops it when the extension goes or
 *				events are kept in memory only.
 *
 * Invariants: database dboid has at most one slot, named
 * "cocohooks_<dboid>" (coco_wal_slot_name; nothing else writes the name),
 * a physical slot that reserves WAL from the oldest position its worker
 * still needs.  Only that database's worker holds it for long (a backend
 * holds it just while making it at install).  A slot someone holds is
 * dropped by its holder: the drops from transaction callbacks and from the
 * launcher leave a held slot alone and never raise an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "pg_compat.h"
#include "settings.h"
#include "wal_progress.h"
#include "wal_slot.h"

#define SLOT_SAVE_INTERVAL_MS	1000

static TimestampTz last_slot_save = 0;
static XLogRecPtr saved_restart = InvalidXLogRecPtr;	/* on disk */

void
coco_wal_slot_name(char *buf, Oid dboid)
{
	snprintf(buf, NAMEDATALEN, "cocohooks_%u", dboid);
}

/* Whether name is one of our slots' names; if so, sets *dboid. */
bool
coco_wal_slot_parse_name(const char *name, Oid *dboid)
{
	unsigned int oid;
	char		tail;

	if (sscanf(name, "cocohooks_%u%c", &oid, &tail) != 1)
		return false;
	*dboid = (Oid) oid;
	return true;
}

/*
 * Says that the slot name was dropped, in the server log and, with a
 * progress mark, to standbys, which drop their copy.
 */
static void
report_dropped(const char *name, const char *why)
{
	Oid			dboid;

	ereport(LOG,
			(errmsg("cocohooks dropped replication slot \"%s\": %s", name, why)));
	if (coco_wal_slot_parse_name(name, &dboid))
		coco_wal_progress_slot_dropped(dboid);
}

/*
 * Drops the slot name, which no one held a moment ago, saying why.  Someone
 * may have taken it meanwhile: then it stays, whoever holds it drops it, and
 * a LOG says so.  Never raises an error: called from transaction callbacks
 * and from the launcher's loop.
 */
static void
drop_slot_if_free(const char *name, const char *why)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		ReplicationSlotDrop(name, true);
		report_dropped(name, why);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(LOG,
				(errmsg("cocohooks did not drop replication slot \"%s\": %s",
						name, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Makes this database's replication slot, with an ERROR that says what
 * for when none is free.  The slot is held by this process on return.
 */
static void
create_slot(const char *name, XLogRecPtr not_before)
{
	bool		free_slot = false;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots && !free_slot; i++)
		free_slot = !ReplicationSlotCtl->replication_slots[i].in_use;
	LWLockRelease(ReplicationSlotControlLock);
	if (!free_slot)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cocohooks cannot keep WAL for the events of this database: all replication slots are in use"),
				 errdetail("Each database with the extension needs a replication slot of its own (\"%s\").", name),
				 errhint("Drop a replication slot that is not needed, or raise \"%s\" and restart the server.",
						 "max_replication_slots")));
	coco_slot_create(name);
	ReplicationSlotReserveWal();

	/*
	 * The slot reserves WAL from the last checkpoint's redo point, which can
	 * be older than this install of the extension: the events of an install
	 * dropped since are there, and the worker would send them again.  Start
	 * where this install began instead, if that is later.
	 */
	SpinLockAcquire(&MyReplicationSlot->mutex);
	if (MyReplicationSlot->data.restart_lsn < not_before)
		MyReplicationSlot->data.restart_lsn = not_before;
	SpinLockRelease(&MyReplicationSlot->mutex);
	ReplicationSlotMarkDirty();
	ReplicationSlotSave();
	ReplicationSlotsComputeRequiredLSN();
	ereport(LOG,
			(errmsg("cocohooks created replication slot \"%s\" to keep WAL for its events",
					name)));
}

static XLogRecPtr
my_slot_restart(void)
{
	XLogRecPtr	restart;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	return restart;
}

/*
 * For the worker: takes the slot that CREATE EXTENSION or a previous worker
 * left, or makes one (an ERROR when none is free: the worker stops and is
 * started again), and returns its restart point, where reading starts.
 */
XLogRecPtr
coco_wal_slot_take(void)
{
	char		name[NAMEDATALEN];
	XLogRecPtr	restart = InvalidXLogRecPtr;

	coco_wal_slot_name(name, MyDatabaseId);
	if (SearchNamedReplicationSlot(name, true) != NULL)
	{
		coco_slot_acquire(name);
		restart = my_slot_restart();
		if (XLogRecPtrIsInvalid(restart))
		{
			/* invalidated: max_slot_wal_keep_size let its WAL go */
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("cocohooks replication slot \"%s\" lost the WAL it reserved",
							name),
					 errdetail("Events in the WAL that was removed are lost; the slot is created anew."),
					 errhint("Do not let \"max_slot_wal_keep_size\" remove WAL that cocohooks still needs; \"cocohooks.max_wal_retention\" gives up waiting events with a log row instead.")));
			ReplicationSlotRelease();
			ReplicationSlotDrop(name, true);
		}
	}
	if (MyReplicationSlot == NULL)
	{
		create_slot(name, InvalidXLogRecPtr);
		restart = my_slot_restart();
	}
	last_slot_save = GetCurrentTimestamp();
	saved_restart = restart;
	return restart;
}

/*
 * For the worker: moves the restart point of the slot it holds up to
 * restart (never back), and saves the slot to disk now and then; a crash
 * in between only makes the next worker read a little more again.
 */
void
coco_wal_slot_move_restart(XLogRecPtr restart, TimestampTz now)
{
	XLogRecPtr	current;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	current = MyReplicationSlot->data.restart_lsn;
	if (restart > current)
		MyReplicationSlot->data.restart_lsn = restart;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (restart > current)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotsComputeRequiredLSN();
		if (TimestampDifferenceExceeds(last_slot_save, now, SLOT_SAVE_INTERVAL_MS))
		{
			ReplicationSlotSave();
			last_slot_save = now;
			saved_restart = my_slot_restart();
		}
	}
}

/* For the worker, at an orderly exit: the slot it holds goes to disk. */
void
coco_wal_slot_save(void)
{
	if (MyReplicationSlot != NULL)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		saved_restart = my_slot_restart();
	}
}

/*
 * For the worker: the restart point of its slot as last saved to disk,
 * where a worker after a crash reads again from.
 */
XLogRecPtr
coco_wal_slot_saved_restart(void)
{
	return saved_restart;
}

/* For the worker: lets go of the slot it holds and drops it. */
void
coco_wal_slot_release_and_drop(const char *why)
{
	char		name[NAMEDATALEN];

	coco_wal_slot_name(name, MyDatabaseId);
	ReplicationSlotRelease();
	ReplicationSlotDrop(name, true);
	report_dropped(name, why);
}

/* For the worker: drops the slot of its database, if there is one. */
void
coco_wal_slot_drop_own(void)
{
	char		name[NAMEDATALEN];

	coco_wal_slot_name(name, MyDatabaseId);
	if (SearchNamedReplicationSlot(name, true) != NULL)
	{
		ReplicationSlotDrop(name, true);
		report_dropped(name, "events are kept in memory only");
	}
}

/*
 * CREATE EXTENSION in wal mode, in the backend, before it commits: makes
 * the database's replication slot if there is none, so that the WAL of
 * the first events is kept from now on, however late the worker starts
 * (no free background worker, say) and whatever happens before it does.
 * The worker takes the slot over, and reads from install_start (where
 * this CREATE EXTENSION began in the WAL) on.  An ERROR here (no free
 * replication slot) fails the CREATE EXTENSION.  Returns whether it made
 * one.
 */
bool
coco_wal_slot_create_for_install(XLogRecPtr install_start)
{
	char		name[NAMEDATALEN];

	coco_wal_slot_name(name, MyDatabaseId);
	if (!coco_wal_mode() || MyReplicationSlot != NULL ||
		SearchNamedReplicationSlot(name, true) != NULL)
		return false;
	create_slot(name, install_start);
	ReplicationSlotRelease();
	return true;
}

/*
 * For a backend, after DROP EXTENSION commits (or a CREATE EXTENSION that
 * made the slot aborts): drops this database's replication slot unless a
 * worker holds it (that worker drops it itself as it sees the extension
 * gone).  Never raises an error: called from transaction callbacks.
 */
void
coco_wal_slot_drop_unused(const char *why)
{
	char		name[NAMEDATALEN];
	ReplicationSlot *slot;
	pid_t		holder = 0;

	coco_wal_slot_name(name, MyDatabaseId);
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	slot = SearchNamedReplicationSlot(name, false);
	if (slot != NULL)
	{
		SpinLockAcquire(&slot->mutex);
		holder = slot->active_pid;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	if (slot == NULL || holder != 0 || MyReplicationSlot != NULL)
		return;
	drop_slot_if_free(name, why);
}

/*
 * Drops the replication slot of database dboid, if there is one and no one
 * uses it: the database was dropped.
 */
void
coco_wal_slot_drop_of(Oid dboid, const char *why)
{
	char		name[NAMEDATALEN];

	coco_wal_slot_name(name, dboid);
	if (SearchNamedReplicationSlot(name, true) == NULL)
		return;
	drop_slot_if_free(name, why);
}

/*
 * Drops the replication slots of databases that are gone (not among the
 * ndbs in dboids): a crash during DROP DATABASE may have left one.
 */
void
coco_wal_slot_drop_orphans(const Oid *dboids, int ndbs)
{
	Oid		   *orphans = palloc(sizeof(Oid) * Max(max_replication_slots, 1));
	int			norphans = 0;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];
		Oid			oid;
		bool		known = false;

		if (!slot->in_use || !coco_wal_slot_parse_name(NameStr(slot->data.name), &oid))
			continue;
		for (int j = 0; j < ndbs && !known; j++)
			known = (dboids[j] == oid);
		if (!known)
			orphans[norphans++] = oid;
	}
	LWLockRelease(ReplicationSlotControlLock);
	for (int i = 0; i < norphans; i++)
		coco_wal_slot_drop_of(orphans[i], "its database was dropped");
	pfree(orphans);
}

/*
 * At postmaster start, before the startup process restores the replication
 * slots: with wal_level minimal or max_replication_slots 0, PostgreSQL
 * refuses to start while any slot exists, and cocohooks can use none (it
 * runs in memory mode).  So its slots, and only they, are removed, with a
 * WARNING: the server starts, as it would have before wal mode was used.
 */
void
coco_wal_slot_remove_unusable(void)
{
	DIR		   *dir;
	struct dirent *de;
	int			removed = 0;

	if (wal_level >= WAL_LEVEL_REPLICA && max_replication_slots > 0)
		return;
	dir = opendir("pg_replslot");
	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
	{
		Oid			oid;
		char		path[MAXPGPATH];

		if (!coco_wal_slot_parse_name(de->d_name, &oid))
			continue;
		snprintf(path, sizeof(path), "pg_replslot/%s", de->d_name);
		if (rmtree(path, true))
			removed++;
		else
			ereport(WARNING,
					(errmsg("cocohooks could not remove replication slot directory \"%s\"", path)));
	}
	closedir(dir);
	if (removed > 0)
	{
		fsync_fname("pg_replslot", true);
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks removed %d replication slots of its wal mode", removed),
				 errdetail("\"%s\" is below replica or \"%s\" is 0, and the server does not start with replication slots then; events written in wal mode and not yet delivered are not sent.",
						   "wal_level", "max_replication_slots"),
				 errhint("Set \"%s\" to replica and \"%s\" above 0 to keep events in the WAL again.",
						 "wal_level", "max_replication_slots")));
	}
}
