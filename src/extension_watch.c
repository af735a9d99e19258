/*-------------------------------------------------------------------------
 *
 * extension_watch.c
 *	  Tells the database's worker when the extension was created or
 *	  dropped, and waits until it has acted on it.
 *
 * A database has a worker only while the extension exists: CREATE
 * EXTENSION reserves the database its dbslot in shared memory (an
 * ERROR past cocohooks.max_databases, see coco_extension_changed), which
 * wants a worker from the launcher once the transaction commits; DROP
 * EXTENSION makes the worker free the dbslot and exit.  In wal mode the
 * worker keeps a replication slot only while the extension exists: CREATE
 * EXTENSION makes it (so the WAL of the first events is kept however late
 * the worker starts), the worker reads events from the WAL from there, and
 * drops the replication slot as the extension goes; the dropping backend
 * drops it if no worker holds it, so that nothing is left holding WAL.
 * The change is noticed in the backend that makes it (at install, and
 * through the object access hook for a drop), acted on once its
 * transaction commits (a rolled-back DROP changes nothing; a rolled-back
 * CREATE frees what it made), and waited for, a few seconds at most, so
 * that the statement's effect is visible when it returns.
 *
 * Runs in: backends (CREATE EXTENSION's install check, DROP EXTENSION).
 * The object access hook and the transaction callback are installed in
 * every process that preloads the library, but act only after one of
 * those.
 *
 * Invariants:
 *	- errors are raised only before commit (the reservation; making the
 *	  replication slot at pre-commit), and fail the statement; the commit
 *	  and abort steps must not raise one, and call only functions that
 *	  never do;
 *	- a rolled-back CREATE frees the dbslot only if it set it up, and the
 *	  replication slot only if it made it;
 *	- the state is per transaction, cleared at commit and at abort.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"

#include "db_slots.h"
#include "extension_watch.h"
#include "wal_slot.h"
#include "worker_marks.h"

#define WAIT_FOR_WORKER_MS	5000

static object_access_hook_type prev_object_access_hook = NULL;
static bool changed_in_xact = false;
static bool created_in_xact = false;
static bool reserved_in_xact = false;	/* the dbslot is ours to free at abort */
static bool wal_slot_in_xact = false;	/* the replication slot too */
static Oid	cocohooks_extension_oid = InvalidOid;
/* where in the WAL the CREATE EXTENSION of this transaction began */
static XLogRecPtr install_start = InvalidXLogRecPtr;

/*
 * Called by CREATE EXTENSION's install check: reserves this database a
 * dbslot, or raises an ERROR if all are taken.
 */
void
coco_extension_changed(void)
{
	bool		created;

	if (coco_dbslot_ensure(MyDatabaseId, COCO_DBSLOT_RESERVED, &created) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cocohooks cannot serve another database"),
				 errdetail("%d databases have the extension, as many as \"%s\" allows; each has its own worker.",
						   coco_dbslot_count(), "cocohooks.max_databases"),
				 errhint("Raise \"%s\" and restart the server, or drop the extension in another database.",
						 "cocohooks.max_databases")));
	if (!created_in_xact)
		install_start = GetXLogInsertRecPtr();
	changed_in_xact = true;
	created_in_xact = true;
	reserved_in_xact |= created;
}

static void
object_access(ObjectAccessType access, Oid classId, Oid objectId,
			  int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || classId != ExtensionRelationId)
		return;
	if (!OidIsValid(cocohooks_extension_oid))
		cocohooks_extension_oid = get_extension_oid("cocohooks", true);
	if (objectId == cocohooks_extension_oid)
	{
		changed_in_xact = true;
		cocohooks_extension_oid = InvalidOid;
	}
}

static void
xact_callback(XactEvent event, void *arg)
{
	if (!changed_in_xact)
		return;
	if (event == XACT_EVENT_PRE_COMMIT && created_in_xact)
		wal_slot_in_xact = coco_wal_slot_create_for_install(install_start);
	if (event == XACT_EVENT_COMMIT)
	{
		if (created_in_xact)
		{
			bool		created;

			/* the launcher starts the worker; it may have taken the dbslot back */
			if (coco_dbslot_ensure(MyDatabaseId, COCO_DBSLOT_WANTED, &created) != NULL && !created)
				(void) coco_dbslot_set_state(MyDatabaseId, COCO_DBSLOT_WANTED, COCO_DBSLOT_RESERVED);
			coco_dbslot_wake_launcher();
		}
		if (!coco_marks_request_extension_check(WAIT_FOR_WORKER_MS) && created_in_xact)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("the cocohooks worker of this database has not started"),
					 errdetail("Events wait until it runs; the server log says why it has not."),
					 errhint("If no background worker slot is free, raise \"%s\" and restart the server.",
							 "max_worker_processes")));
		/* a database whose worker is not running (a template, say) */
		if (!created_in_xact)
			coco_wal_slot_drop_unused("the extension was dropped");
	}
	else if (event == XACT_EVENT_ABORT)
	{
		if (reserved_in_xact)
			coco_dbslot_free(MyDatabaseId, COCO_DBSLOT_RESERVED);
		if (wal_slot_in_xact)
			coco_wal_slot_drop_unused("CREATE EXTENSION was rolled back");
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
	{
		changed_in_xact = created_in_xact = reserved_in_xact = wal_slot_in_xact = false;
		install_start = InvalidXLogRecPtr;
	}
}

void
coco_extension_watch_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;
	RegisterXactCallback(xact_callback, NULL);
}
