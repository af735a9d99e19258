/*-------------------------------------------------------------------------
 *
 * signing_keys.c
 *	  The secrets each hook's requests are signed with, as of now.
 *
 * A signature follows the catalog at the time of the request: after
 * rotate_secret(), every request, retries of older events included, is
 * signed with the new secret and, until the overlap ends, with the
 * previous one too.  So the worker keeps the hooks' secrets here, read
 * from cocohooks.hooks, and for unregistered hooks whose last events may
 * still be sent, from cocohooks.hook_versions.  Messages carry no key
 * (cocohooks.h), except those 0.1 and 0.2 wrote, whose own key signs for a
 * hook the catalog no longer has.
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
 *	- the secrets are read only in hook_settings.c's refresh, into a
 *	  context of their own that replaces the last one whole once the read
 *	  succeeded;
 *	- after a failed read the worker signs with the secrets it read last;
 *	- the transaction callback never raises an error: it only bumps the
 *	  number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "event_message.h"
#include "signing_keys.h"
#include "worker_marks.h"

static HTAB *keys = NULL;
static MemoryContext keys_cxt = NULL;
static HTAB *reading = NULL;	/* being read, until coco_signing_keys_end */
static MemoryContext reading_cxt = NULL;

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
 * Starts a new read of the secrets: each hook's follow
 * (coco_signing_keys_load), then coco_signing_keys_end says whether the
 * read succeeded.  In hook_settings.c's refresh.
 */
void
coco_signing_keys_begin(void)
{
	HASHCTL		ctl;

	if (reading_cxt != NULL)
		MemoryContextDelete(reading_cxt);
	reading_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks signing keys",
										ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(CocoSigningKeys);
	ctl.hcxt = reading_cxt;
	reading = hash_create("cocohooks signing keys", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * One hook's secrets (each may be NULL; previous signs until
 * previous_until).  A hook loaded twice keeps its first secrets: the
 * catalog's row is read before the settings of an unregistered hook.
 */
void
coco_signing_keys_load(int64 id, const char *secret, const char *previous,
					   TimestampTz previous_until)
{
	bool		found;
	CocoSigningKeys *k = hash_search(reading, &id, HASH_ENTER, &found);

	if (found)
		return;
	k->key_len = 0;
	k->previous_len = 0;
	k->previous_until = 0;
	if (secret)
		k->key_len = Max(coco_secret_decode(secret, k->key), 0);
	if (previous && previous_until != 0)
	{
		k->previous_until = previous_until;
		k->previous_len = Max(coco_secret_decode(previous, k->previous), 0);
	}
}

/*
 * The read ended: if it succeeded, its secrets replace the last ones;
 * if not, the last ones stay in force until a later read succeeds.
 */
void
coco_signing_keys_end(bool succeeded)
{
	if (succeeded)
	{
		if (keys_cxt != NULL)
			MemoryContextDelete(keys_cxt);
		keys_cxt = reading_cxt;
		keys = reading;
	}
	else if (reading_cxt != NULL)
		MemoryContextDelete(reading_cxt);
	reading_cxt = NULL;
	reading = NULL;
}

/*
 * The hook's secrets as of the last successful read, or NULL when the
 * catalog has none for it (never read yet, or the hook was unregistered
 * and its last events finished): sign with the message's own key, which
 * only messages of 0.1 and 0.2 carry.
 */
const CocoSigningKeys *
coco_signing_keys_for(int64 hook_id)
{
	if (keys == NULL)
		return NULL;
	return hash_search(keys, &hook_id, HASH_FIND, NULL);
}
