/*-------------------------------------------------------------------------
 *
 * document_order.c
 *	  One delivery at a time per hook and document (ordering = 'document').
 *
 * The delivery engine starts events in commit order.  A delivery of a hook
 * with ordering = 'document' first enters its document's line: a hash
 * entry keyed by the hook and the document's key, a 64-bit hash of the
 * document id (the JSON text of the primary key).  The engine hashes it
 * once per event (coco_order_document_key) and hands the key in, as it
 * needs it for parked rows too.  The first in line is sent (and retried) as
 * usual; the others wait, in order, until it has succeeded or failed for
 * good, then the next one goes.  Other documents are not held back.
 *
 * Two documents whose ids share a hash share a line: they are delivered
 * one at a time, which costs them concurrency, never order.  The number of
 * waiting deliveries is bounded by the engine (it takes no new events
 * past a limit).
 *
 * Runs in: the worker (the delivery engine), and nowhere else.
 *
 * Invariants: a line exists while its first delivery is unfinished, and
 * only then; the waiting count is the number of nodes in all lines; no
 * function here raises an error but hash_search's out of memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/hsearch.h"

#include "document_order.h"

typedef struct LineKey
{
	int64		hook_id;
	uint64		document_hash;
} LineKey;

typedef struct Line
{
	LineKey		key;			/* hash key */
	dlist_node *first;			/* the one that goes now */
	dlist_head	waiting;		/* behind the first, in order */
} Line;

static HTAB *lines = NULL;
static int	nwaiting = 0;

void
coco_order_init(MemoryContext cxt)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(LineKey);
	ctl.entrysize = sizeof(Line);
	ctl.hcxt = cxt;
	lines = hash_create("cocohooks document lines", 1024, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* A document's key: a 64-bit hash of its id (the JSON text of its key). */
int64
coco_order_document_key(const char *document_id, int len)
{
	return (int64) DatumGetUInt64(hash_any_extended((const unsigned char *) document_id,
													len, 0));
}

bool
coco_order_enter(int64 hook_id, int64 document_key,
				 dlist_node *node, void **line)
{
	LineKey		key;
	Line	   *l;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.hook_id = hook_id;
	key.document_hash = (uint64) document_key;
	l = hash_search(lines, &key, HASH_ENTER, &found);
	*line = l;
	if (!found)
	{
		l->first = node;
		dlist_init(&l->waiting);
		return true;
	}
	dlist_push_tail(&l->waiting, node);
	nwaiting++;
	return false;
}

dlist_node *
coco_order_leave(void *line)
{
	Line	   *l = (Line *) line;

	if (dlist_is_empty(&l->waiting))
	{
		hash_search(lines, &l->key, HASH_REMOVE, NULL);
		return NULL;
	}
	nwaiting--;
	l->first = dlist_pop_head_node(&l->waiting);
	return l->first;
}

/* The node of the delivery that goes now in line. */
dlist_node *
coco_order_first(void *line)
{
	return ((Line *) line)->first;
}

int
coco_order_waiting(void)
{
	return nwaiting;
}
