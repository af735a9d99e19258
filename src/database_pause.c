/*-------------------------------------------------------------------------
 *
 * database_pause.c
 *	  Stops a database's worker for statements that need the database to
 *	  themselves.
 *
 * DROP DATABASE (with or without FORCE), CREATE DATABASE with it as the
 * template, ALTER DATABASE ... RENAME and ALTER DATABASE ... SET TABLESPACE
 * fail, or wait, while any other process is connected to the database, and
 * a worker is.  So before such a statement the database's dbslot is stopped
 * (the launcher starts no worker for it), its worker is told to exit
 * (SIGTERM: in memory mode it saves its unfinished events) and waited for;
 * after it, the dbslot wants a worker again, unless the database was
 * dropped: then its dbslot, its replication slot and its saved events go,
 * so that nothing is left holding WAL.
 *
 * Runs in: backends (from utility_hook.c, around the statement).
 *
 * Invariants: a stopped dbslot is always set wanted again (statement
 * failed or done) unless the database was dropped; the wait for the worker
 * to exit is bounded (STOP_WAIT_MS) and interruptible.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/timestamp.h"

#include "database_pause.h"
#include "db_slots.h"
#include "event_store.h"
#include "hook_stats.h"
#include "wal_slot.h"

#define STOP_WAIT_MS	10000

/* The database a statement needs to itself, or NULL. */
static const char *
database_needed_alone(Node *stmt, bool *drop)
{
	ListCell   *lc;

	*drop = false;
	if (IsA(stmt, DropdbStmt))
	{
		*drop = true;
		return ((DropdbStmt *) stmt)->dbname;
	}
	if (IsA(stmt, CreatedbStmt))
	{
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				return defGetString(opt);
		}
		return "template1";
	}
	if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		return ((RenameStmt *) stmt)->subname;
	if (IsA(stmt, AlterDatabaseStmt))
	{
		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
		{
			if (strcmp(lfirst_node(DefElem, lc)->defname, "tablespace") == 0)
				return ((AlterDatabaseStmt *) stmt)->dbname;
		}
	}
	return NULL;
}

/* The pid of database dboid's worker, 0 if none. */
static int
worker_of(Oid dboid)
{
	int			n = coco_dbslot_count();
	CocoDbSlotInfo *slots = palloc(sizeof(CocoDbSlotInfo) * n);
	int			pid = 0;

	n = coco_dbslot_list(slots, n);
	for (int i = 0; i < n; i++)
		if (slots[i].dboid == dboid)
			pid = slots[i].worker_pid;
	pfree(slots);
	return pid;
}

/* Stops database dboid's worker; true if its dbslot was in use. */
static bool
stop_worker(Oid dboid)
{
	TimestampTz deadline;
	int			pid;

	if (coco_dbslot_set_state(dboid, COCO_DBSLOT_STOPPED, -1) == COCO_DBSLOT_FREE)
		return false;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), STOP_WAIT_MS);
	while ((pid = worker_of(dboid)) != 0 && GetCurrentTimestamp() < deadline)
	{
		(void) kill(pid, SIGTERM);
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
	return true;
}

/*
 * Before a statement: if it needs another database to itself, stops that
 * database's worker (and remembers, in *pause, what to do after).  Returns
 * whether the statement concerns such a database.
 */
bool
coco_database_pause_begin(Node *stmt, CocoDbPause *pause)
{
	const char *dbname;

	pause->dboid = InvalidOid;
	pause->drop = false;
	pause->stopped = false;
	if (!coco_dbslots_available())
		return false;
	dbname = database_needed_alone(stmt, &pause->drop);
	pause->dboid = dbname ? get_database_oid(dbname, true) : InvalidOid;
	if (!OidIsValid(pause->dboid) || pause->dboid == MyDatabaseId)
		return false;
	pause->stopped = stop_worker(pause->dboid);
	return true;
}

/* The statement failed: the worker may start again. */
void
coco_database_pause_failed(const CocoDbPause *pause)
{
	if (pause->stopped)
	{
		(void) coco_dbslot_set_state(pause->dboid, COCO_DBSLOT_WANTED, COCO_DBSLOT_STOPPED);
		coco_dbslot_wake_launcher();
	}
}

/*
 * The statement succeeded: a dropped database's dbslot, replication slot and
 * saved events go; any other database's worker may start again.
 */
void
coco_database_pause_end(const CocoDbPause *pause)
{
	if (pause->drop)
	{
		/* DROP DATABASE cannot run in a transaction block: it is done */
		coco_dbslot_free(pause->dboid, -1);
		coco_wal_slot_drop_of(pause->dboid, "its database was dropped");
		coco_store_remove_for(pause->dboid);
		coco_hook_stats_forget(pause->dboid);
	}
	else
		coco_database_pause_failed(pause);
}
