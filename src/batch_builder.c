/*-------------------------------------------------------------------------
 *
 * batch_builder.c
 *	  Batches of a hook's events: which events go together, the batch's
 *	  webhook-id, and its body.
 *
 * A hook whose settings version has batch_size > 1 gets its events in
 * batches: one request whose body is a JSON array of the events' bodies,
 * each with its own webhook-id added as its first key ("webhook_id"), and
 * one webhook-id of its own, signed as one body.  The delivery engine adds
 * each delivery of such a hook, as it starts it, to the hook's open batch;
 * a batch is a run of the hook's consecutive events in the order the
 * engine starts them (commit order, per source), cut
 *	- when it holds batch_size events,
 *	- before an event committed more than batch_wait after its first one's
 *	  commit (queued_at), or of other settings (a new version of the hook),
 *	- when batch_wait has passed since its first event's commit, by the
 *	  clock, with no event to cut it otherwise (coco_batch_pop_due).
 * The first two depend only on the events, so that events read again
 * after a crash (from the WAL, or the saved events of a clean exit) are
 * cut alike; the third depends on when they arrive (docs/reference.md says
 * what that means for the ids).
 *
 * The batch's webhook-id is "batch_<first event id>_<hook id>_<count>_<digest>",
 * the digest a 64-bit hash of its members' event ids in order: the same
 * members give the same id, after a retry or a crash, and other members
 * give another id, so that a receiver that drops a webhook-id it has seen
 * never drops an event it did not get.
 *
 * Runs in: the worker (the delivery engine), and nowhere else.
 *
 * Invariants: a hook has at most one open batch; a closed batch's id, body
 * and members never change; a batch lives until its last member is
 * finished (coco_batch_member_finished), and its members' messages live
 * at least as long (the engine frees an event's message only once all its
 * deliveries are finished); a batch's arrays grow with its members, up to
 * batch_size, and its body is its events' bodies and ids once more, so
 * what batches hold is bounded by the engine's bound on events
 * (cocohooks.max_concurrent_deliveries); nothing here raises an error but
 * out of memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/json.h"

#include "batch_builder.h"

typedef struct OpenEntry
{
	int64		hook_id;		/* hash key */
	CocoBatch  *batch;
} OpenEntry;

static MemoryContext batch_cxt = NULL;
static HTAB *open_batches = NULL;	/* hook id -> its open batch */
static dlist_head open_list = DLIST_STATIC_INIT(open_list);
static int	nopen = 0;

void
coco_batch_init(MemoryContext cxt)
{
	HASHCTL		ctl;

	batch_cxt = cxt;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(OpenEntry);
	ctl.hcxt = cxt;
	open_batches = hash_create("cocohooks open batches", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

bool
coco_batch_any_open(void)
{
	return nopen > 0;
}

/* The hook's open batch, or NULL. */
CocoBatch *
coco_batch_open_of(int64 hook_id)
{
	OpenEntry  *e;

	if (nopen == 0)
		return NULL;
	e = hash_search(open_batches, &hook_id, HASH_FIND, NULL);
	return e ? e->batch : NULL;
}

/*
 * Whether an event committed at queued_at, of the hook's settings target,
 * may join the hook's open batch b: same settings, room left, and within
 * batch_wait of the first's commit.
 */
bool
coco_batch_takes(const CocoBatch *b, const CocoHookTarget *target,
				 TimestampTz queued_at)
{
	return b->target->settings_version == target->settings_version &&
		b->target->flags == target->flags &&
		b->n < b->target->batch_size &&
		queued_at <= TimestampTzPlusMilliseconds(b->first_queued_at,
												 b->target->batch_wait_ms);
}

/* Opens the hook's batch, for an event committed at queued_at. */
CocoBatch *
coco_batch_begin(const CocoHookTarget *target, TimestampTz queued_at)
{
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	CocoBatch  *b = palloc0(sizeof(CocoBatch));
	/* grown as members come: a batch cut by time may hold one of 1,000 */
	int			size = Min(Max(target->batch_size, 1), 16);
	OpenEntry  *e;
	bool		found;

	b->hook_id = target->hook_id;
	b->target = target;
	b->first_queued_at = queued_at;
	b->open = true;
	b->capacity = size;
	b->members = palloc(sizeof(void *) * size);
	b->msgs = palloc(sizeof(CocoEventHeader *) * size);
	b->item_ids = palloc(sizeof(char *) * size);
	b->digest = (uint64) target->hook_id;
	e = hash_search(open_batches, &b->hook_id, HASH_ENTER, &found);
	Assert(!found);
	e->batch = b;
	dlist_push_tail(&open_list, &b->open_node);
	nopen++;
	MemoryContextSwitchTo(old);
	return b;
}

/*
 * Adds a member, whose event msg has the id event_id and whose own
 * webhook-id is item_id (both must live as long as the batch).  Returns
 * true if the batch is full now.
 */
bool
coco_batch_add(CocoBatch *b, void *member, const CocoEventHeader *msg,
			   const char *event_id, const char *item_id)
{
	Assert(b->open && b->n < b->target->batch_size);
	if (b->n == b->capacity)
	{
		b->capacity = Min(b->capacity * 2, b->target->batch_size);
		b->members = repalloc(b->members, sizeof(void *) * b->capacity);
		b->msgs = repalloc(b->msgs, sizeof(CocoEventHeader *) * b->capacity);
		b->item_ids = repalloc(b->item_ids, sizeof(char *) * b->capacity);
	}
	if (b->n == 0)
		strlcpy(b->first_event_id, event_id, sizeof(b->first_event_id));
	b->members[b->n] = member;
	b->msgs[b->n] = msg;
	b->item_ids[b->n] = item_id;
	b->n++;
	b->unfinished++;
	b->digest = DatumGetUInt64(hash_any_extended((const unsigned char *) event_id,
												 strlen(event_id), b->digest));
	return b->n >= b->target->batch_size;
}

/* The array: each event's body with its own webhook-id as first key. */
static void
build_body(CocoBatch *b)
{
	StringInfoData buf;
	CocoEventKind kind = coco_event_kind(b->msgs[0]);
	bool		one_kind = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < b->n; i++)
	{
		const CocoEventHeader *msg = b->msgs[i];
		const char *body = coco_event_body(msg);
		uint32		len = msg->body_len;

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, "{\"webhook_id\": ");
		escape_json(&buf, b->item_ids[i]);
		if (len >= 2 && body[0] == '{')
		{
			/* the body's keys follow ours: ", " unless it has none */
			uint32		p = 1;

			while (p < len && (body[p] == ' ' || body[p] == '\n'))
				p++;
			if (p < len && body[p] != '}')
				appendStringInfoString(&buf, ", ");
			appendBinaryStringInfo(&buf, body + p, len - p);
		}
		else
		{
			/* not an object (no body of ours is one): kept whole */
			appendStringInfoString(&buf, ", \"body\": ");
			appendBinaryStringInfo(&buf, body, len);
			appendStringInfoChar(&buf, '}');
		}
		if (coco_event_kind(msg) != kind)
			one_kind = false;
	}
	appendStringInfoChar(&buf, ']');
	b->body = buf.data;
	b->body_len = buf.len;
	b->event = one_kind ? coco_event_names[kind] : "batch";
}

/* Closes an open batch: no more members; its id and body are made. */
void
coco_batch_close(CocoBatch *b)
{
	MemoryContext old;

	Assert(b->open && b->n > 0);
	hash_search(open_batches, &b->hook_id, HASH_REMOVE, NULL);
	dlist_delete(&b->open_node);
	nopen--;
	b->open = false;
	snprintf(b->id, sizeof(b->id), "batch_%s_%lld_%d_%016llx",
			 b->first_event_id, (long long) b->hook_id, b->n,
			 (unsigned long long) b->digest);
	old = MemoryContextSwitchTo(batch_cxt);
	build_body(b);
	MemoryContextSwitchTo(old);
}

/*
 * An open batch whose batch_wait has passed since its first event's
 * commit, or NULL.  The caller closes it.
 */
CocoBatch *
coco_batch_pop_due(TimestampTz now)
{
	dlist_iter	iter;

	dlist_foreach(iter, &open_list)
	{
		CocoBatch  *b = dlist_container(CocoBatch, open_node, iter.cur);

		if (TimestampTzPlusMilliseconds(b->first_queued_at, b->target->batch_wait_ms) <= now)
			return b;
	}
	return NULL;
}

/* Milliseconds until an open batch is due, -1 if none is open. */
long
coco_batch_next_ms(void)
{
	TimestampTz now;
	long		next = -1;
	dlist_iter	iter;

	if (nopen == 0)
		return -1;
	now = GetCurrentTimestamp();
	dlist_foreach(iter, &open_list)
	{
		CocoBatch  *b = dlist_container(CocoBatch, open_node, iter.cur);
		TimestampTz due = TimestampTzPlusMilliseconds(b->first_queued_at,
													  b->target->batch_wait_ms);
		long		ms = due <= now ? 0 : TimestampDifferenceMilliseconds(now, due) + 1;

		if (next < 0 || ms < next)
			next = ms;
	}
	return next;
}

/*
 * One member of a closed batch is finished: the batch is freed with its
 * last (true is returned then; b is gone).
 */
bool
coco_batch_member_finished(CocoBatch *b)
{
	Assert(!b->open && b->unfinished > 0);
	if (--b->unfinished > 0)
		return false;
	pfree(b->members);
	pfree(b->msgs);
	pfree(b->item_ids);
	if (b->body)
		pfree(b->body);
	pfree(b);
	return true;
}
