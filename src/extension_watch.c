/*-------------------------------------------------------------------------
 *
 * extension_watch.c
 *	  Tells the worker when the extension was created or dropped in its
 *	  database, and waits until it has acted on it.
 *
 * In wal mode the worker keeps a replication slot only while the extension
 * exists: CREATE EXTENSION makes it start reading events from the WAL, and
 * DROP EXTENSION makes it drop the slot, so that nothing is left holding
 * WAL.  The change is noticed in the backend that makes it (at install, and
 * through the object access hook for a drop), acted on once its transaction
 * commits (a rolled-back DROP changes nothing), and waited for, a few
 * seconds at most, so that the statement's effect is visible when it
 * returns.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"

#define WAIT_FOR_WORKER_MS	5000

static object_access_hook_type prev_object_access_hook = NULL;
static bool changed_in_xact = false;
static Oid	cocohooks_extension_oid = InvalidOid;

/* Called by CREATE EXTENSION's install check. */
void
coco_extension_changed(void)
{
	changed_in_xact = true;
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
	if (event == XACT_EVENT_COMMIT)
	{
		changed_in_xact = false;
		if (coco_wal_mode())
			coco_queue_request_extension_check(WAIT_FOR_WORKER_MS);
	}
	else if (event == XACT_EVENT_ABORT)
		changed_in_xact = false;
}

void
coco_extension_watch_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;
	RegisterXactCallback(xact_callback, NULL);
}
