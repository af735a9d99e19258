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
 * or prepares; the worker then reads the hooks again (hook_settings.c,
 * which hands each row's secrets to coco_signing_keys_load_row).
 *
 * Runs in: the worker (reading and using the secrets), and any process
 * whose transaction changes cocohooks.hooks (the bump, from the statement
 * trigger of hook_admin.c): backends, and the worker when it disables a
 * hook.
 *
 * Invariants:
 *	- the secrets are read only in hook_settings.c's refresh, into
 *	  keys_cxt, replaced whole each time;
 *	- after a failed read the worker signs with the messages' own keys
 *	  until a later refresh reads them;
 *	- the transaction callback never raises an error: it only bumps the
 *	  number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "event_message.h"
#include "hooks_catalog.h"
#include "signing_keys.h"
#include "worker_marks.h"

static HTAB *keys = NULL;
static MemoryContext keys_cxt = NULL;

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

/*
 * Starts a new read of the secrets: the hooks' rows follow
 * (coco_signing_keys_load_row).  In hook_settings.c's refresh.
 */
void
coco_signing_keys_reset(void)
{
	HASHCTL		ctl;

	if (keys_cxt == NULL)
		keys_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks signing keys",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(keys_cxt);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(CocoSigningKeys);
	ctl.hcxt = keys_cxt;
	keys = hash_create("cocohooks signing keys", 64, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* One row of cocohooks.hooks (hook id id): its secrets. */
void
coco_signing_keys_load_row(int64 id, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		value;
	CocoSigningKeys *k = hash_search(keys, &id, HASH_ENTER, NULL);

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

/* The secrets could not be read: sign with the messages' own keys meanwhile. */
void
coco_signing_keys_forget(void)
{
	keys = NULL;
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
