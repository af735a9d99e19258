/*-------------------------------------------------------------------------
 *
 * gone_hooks.c
 *	  Hooks the worker disables (their receiver answered 410 Gone, or
 *	  nothing was delivered to them for too long), and their waiting
 *	  events not sent.
 *
 * A receiver that answers 410 says it will never want these requests
 * again; a hook whose deliveries all failed for
 * cocohooks.disable_failing_hooks_after (failing_hooks.c) is as good as
 * gone.  The worker then disables the hook in cocohooks.hooks, with
 * disabled_reason saying why and when, in the same transaction as its
 * next log rows (so new writes stop firing it), and sends none of the
 * hook's events that were written before the answer: they fail at once,
 * logged with their payload, so that redeliver() can still send them once
 * the hook is enabled again.  Events written after enable_hook() are sent
 * as usual, so a hook's entry here never outlives its purpose; the map is
 * capped, dropping the oldest entry when full.
 *
 * Runs in: the worker (its delivery engine, and the log transaction that
 * disables the hooks, delivery_log.c).
 *
 * Invariants:
 *	- a hook leaves the pending list only once the transaction that
 *	  disables it has committed (coco_gone_written);
 *	- both are bounded: MAX_GONE_HOOKS hooks in the map, MAX_PENDING
 *	  hooks waiting to be disabled;
 *	- the map lives in this worker's memory only: a new worker starts
 *	  without it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "gone_hooks.h"

#define MAX_GONE_HOOKS		4096
#define MAX_PENDING			256

typedef struct GoneHook
{
	int64		hook_id;		/* hash key */
	TimestampTz gone_at;		/* when it was disabled */
	char		not_sent[COCO_DISABLE_REASON_LEN];	/* the error of its held-back deliveries */
} GoneHook;

static HTAB *gone = NULL;
static CocoHookDisable pending[MAX_PENDING];
static int	npending = 0;

static void
forget_oldest(void)
{
	HASH_SEQ_STATUS status;
	GoneHook   *g;
	GoneHook   *oldest = NULL;

	hash_seq_init(&status, gone);
	while ((g = hash_seq_search(&status)) != NULL)
		if (oldest == NULL || g->gone_at < oldest->gone_at)
			oldest = g;
	if (oldest)
		hash_search(gone, &oldest->hook_id, HASH_REMOVE, NULL);
}

/*
 * The worker disables the hook now: reason goes into its disabled_reason,
 * not_sent is the error logged for each of its events written before now,
 * which are not sent.
 */
void
coco_gone_note(int64 hook_id, const char *reason, const char *not_sent)
{
	GoneHook   *g;
	bool		found;
	TimestampTz now = GetCurrentTimestamp();

	if (gone == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(GoneHook);
		gone = hash_create("cocohooks gone hooks", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	if (hash_get_num_entries(gone) >= MAX_GONE_HOOKS &&
		hash_search(gone, &hook_id, HASH_FIND, NULL) == NULL)
		forget_oldest();
	g = hash_search(gone, &hook_id, HASH_ENTER, &found);
	g->gone_at = now;
	strlcpy(g->not_sent, not_sent, sizeof(g->not_sent));

	for (int i = 0; i < npending; i++)
		if (pending[i].hook_id == hook_id)
			return;
	if (npending < MAX_PENDING)
	{
		pending[npending].hook_id = hook_id;
		strlcpy(pending[npending].reason, reason, sizeof(pending[npending].reason));
		npending++;
	}
	/* else: disabled with a later note of the same hook; its events are held back already */
}

/*
 * The error of an event of the hook written at queued_at that must not be
 * sent (palloc'd): the hook was disabled after it was written.  NULL if it
 * may go.
 */
char *
coco_gone_skips(int64 hook_id, TimestampTz queued_at)
{
	GoneHook   *g;

	if (gone == NULL || hash_get_num_entries(gone) == 0)
		return NULL;
	g = hash_search(gone, &hook_id, HASH_FIND, NULL);
	if (g == NULL || queued_at > g->gone_at)
		return NULL;
	return pstrdup(g->not_sent);
}

/* The hooks to disable with the next log rows. */
int
coco_gone_pending(CocoHookDisable **disables)
{
	*disables = pending;
	return npending;
}

/* They are disabled (committed). */
void
coco_gone_written(void)
{
	npending = 0;
}
