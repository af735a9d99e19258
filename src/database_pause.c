/*-------------------------------------------------------------------------
 *
 * database_pause.c
 *	  Stops a database's worker for statements that need the database to
 *	  themselves.
 *
 * DROP DATABASE (with or without FORCE), CREATE DATABASE with it as the
 * template, ALTER DATABASE ... RENAME and ALTER DATABASE ... SET TABLESPACE
 * fail, or wait, while any other process is connected to the database, and
 * a worker is.  So before such a statement the database's slot is stopped
 * (the launcher starts no worker for it), its worker is told to exit
 * (SIGTERM: in memory mode it saves its unfinished events) and waited for;
 * after it, the slot wants a worker again, unless the database was
 * dropped: then its slot, its replication slot and its saved events go,
 * so that nothing is left holding WAL.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include <signal.h>

#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "process_utility.h"
#include "utils/timestamp.h"

#include "wal_source.h"

#define STOP_WAIT_MS	10000

static ProcessUtility_hook_type prev_process_utility = NULL;

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
	int			n = coco_slot_count();
	CocoSlotInfo *slots = palloc(sizeof(CocoSlotInfo) * n);
	int			pid = 0;

	n = coco_slot_list(slots, n);
	for (int i = 0; i < n; i++)
		if (slots[i].dboid == dboid)
			pid = slots[i].worker_pid;
	pfree(slots);
	return pid;
}

/* Stops database dboid's worker; true if its slot was in use. */
static bool
stop_worker(Oid dboid)
{
	TimestampTz deadline;
	int			pid;

	if (coco_slot_set_state(dboid, COCO_SLOT_STOPPED, -1) == COCO_SLOT_FREE)
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

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	bool		is_drop = false;
	const char *dbname = coco_queue_available() ?
		database_needed_alone(pstmt->utilityStmt, &is_drop) : NULL;
	Oid			dboid = dbname ? get_database_oid(dbname, true) : InvalidOid;
	volatile bool drop = is_drop;
	volatile bool stopped;

	if (!OidIsValid(dboid) || dboid == MyDatabaseId)
	{
		coco_next_process_utility(prev_process_utility, pstmt, queryString, readOnlyTree,
								  context, params, queryEnv, dest, qc);
		return;
	}

	stopped = stop_worker(dboid);
	PG_TRY();
	{
		coco_next_process_utility(prev_process_utility, pstmt, queryString, readOnlyTree,
								  context, params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (stopped)
		{
			(void) coco_slot_set_state(dboid, COCO_SLOT_WANTED, COCO_SLOT_STOPPED);
			coco_launcher_wake();
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (drop)
	{
		/* DROP DATABASE cannot run in a transaction block: it is done */
		coco_slot_free(dboid, -1);
		coco_wal_slot_drop_of(dboid);
		coco_store_remove_for(dboid);
	}
	else if (stopped)
	{
		(void) coco_slot_set_state(dboid, COCO_SLOT_WANTED, COCO_SLOT_STOPPED);
		coco_launcher_wake();
	}
}

void
coco_database_pause_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}
