/*-------------------------------------------------------------------------
 *
 * signing_keys.c
 *	  The secrets each hook's requests are signed with, as of now.
 *
 * A message carries its hooks' keys as they were when the row was
 * written, but a signature must follow the catalog at the time of the
 * request: after rotate_secret(), every request, retries of older events
 * included, is signed with the new secret and, until the overlap ends,
 * with the previous one too.  So the worker keeps the hooks' secrets here,
 * read from cocohooks.hooks, and signs with them; a message's own key is
 * used only for a hook that no longer exists (its events are still
 * delivered as they were written), or while the secrets cannot be read.
 *
 * A transaction that changes cocohooks.hooks bumps a generation number in
 * the database's slot in shared memory (worker_marks.c) when it commits
 * or prepares; the worker reads the secrets again when the number moved,
 * or at the latest every few seconds (a prepared transaction commits
 * elsewhere, without our callback).
 *
 * Runs in: the worker (reading and using the secrets), and any process
 * whose transaction changes cocohooks.hooks (the bump, from the statement
 * trigger of hook_admin.c): backends, and the worker when it disables a
 * gone hook.
 *
 * Invariants:
 *	- the secrets are read only between transactions, in a short one of
 *	  their own, into keys_cxt, replaced whole each time;
 *	- a failed read is reported, not raised: the worker signs with the
 *	  messages' own keys until a later refresh reads them;
 *	- the transaction callback never raises an error: it only bumps the
 *	  number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "event_message.h"
#include "hooks_catalog.h"
#include "signing_keys.h"
#include "worker_marks.h"

#define MAX_AGE_MS	5000

static HTAB *keys = NULL;
static MemoryContext keys_cxt = NULL;
static bool loaded = false;
static uint32 loaded_generation = 0;
static TimestampTz loaded_at = 0;

static bool bump_at_commit = false;
static bool callback_registered = false;

static void
bump_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			if (bump_at_commit)
				coco_marks_bump_hooks_generation();
			bump_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			bump_at_commit = false;
			break;
		default:
			break;
	}
}

/* A backend's transaction changed cocohooks.hooks: tell the worker at commit. */
void
coco_signing_keys_note_change(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(bump_callback, NULL);
		callback_registered = true;
	}
	bump_at_commit = true;
}

/* Reads every hook's secrets; call inside a transaction. */
static void
load_keys(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("hooks", nsp) : InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	HASHCTL		ctl;

	MemoryContextReset(keys_cxt);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(CocoSigningKeys);
	ctl.hcxt = keys_cxt;
	keys = hash_create("cocohooks signing keys", 64, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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
		CocoSigningKeys *k;

		value = coco_hooks_attr(tup, desc, Anum_hooks_id, &isnull);
		if (isnull)
			continue;
		id = DatumGetInt64(value);
		k = hash_search(keys, &id, HASH_ENTER, NULL);
		k->key_len = 0;
		k->previous_len = 0;
		k->previous_until = 0;
		value = coco_hooks_attr(tup, desc, Anum_hooks_secret, &isnull);
		if (!isnull)
			k->key_len = Max(coco_secret_decode(TextDatumGetCString(value), k->key), 0);
		value = coco_hooks_attr(tup, desc, Anum_hooks_previous_secret, &isnull);
		if (!isnull)
		{
			Datum		until = coco_hooks_attr(tup, desc, Anum_hooks_previous_secret_until, &isnull);

			if (!isnull)
			{
				k->previous_until = DatumGetTimestampTz(until);
				k->previous_len = Max(coco_secret_decode(TextDatumGetCString(value),
														 k->previous), 0);
			}
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * Reads the secrets again if a change committed since, or if they are a
 * few seconds old.  Call in the worker, outside any transaction.
 */
void
coco_signing_keys_refresh(void)
{
	uint32		generation = coco_marks_hooks_generation();
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;

	if (loaded && generation == loaded_generation &&
		!TimestampDifferenceExceeds(loaded_at, now, MAX_AGE_MS))
		return;
	if (IsTransactionState())
		return;					/* only ever between transactions */
	if (keys_cxt == NULL)
		keys_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks signing keys",
										 ALLOCSET_SMALL_SIZES);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		load_keys();
		PopActiveSnapshot();
		CommitTransactionCommand();
		loaded = true;
	}
	PG_CATCH();
	{
		/* sign with the messages' own keys meanwhile, and try again later */
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		keys = NULL;
		loaded = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	loaded_generation = generation;
	loaded_at = now;
}

/*
 * The hook's secrets as of the last refresh, or NULL when the catalog has
 * no such hook (it was unregistered: sign with the message's key).
 */
const CocoSigningKeys *
coco_signing_keys_for(int64 hook_id)
{
	if (keys == NULL)
		return NULL;
	return hash_search(keys, &hook_id, HASH_FIND, NULL);
}
