/*-------------------------------------------------------------------------
 *
 * batch_builder.h
 *	  Batches of a hook's events (batch_size > 1): which events go together,
 *	  the batch's webhook-id, and its body, a JSON array.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_BATCH_BUILDER_H
#define COCOHOOKS_BATCH_BUILDER_H

#include "postgres.h"

#include "lib/ilist.h"
#include "utils/timestamp.h"

#include "cocohooks.h"
#include "hook_settings.h"

/* "batch_<first event id>_<hook id>_<count>_<16 hex digits>" and a '\0' */
#define COCO_BATCH_ID_LEN	(6 + COCO_MAX_EVENT_ID_LEN + 1 + 20 + 1 + 4 + 1 + 16 + 1)

/*
 * One batch: its members are the engine's deliveries (opaque here), in the
 * order they were added, which is their events' order.  Open while it
 * gathers; once closed, its id, body and members never change.
 */
typedef struct CocoBatch
{
	int64		hook_id;
	const CocoHookTarget *target;	/* its first member's: all name the same */
	TimestampTz first_queued_at;	/* its first event's commit */
	int			n;				/* members */
	int			capacity;		/* of the arrays below, at most batch_size */
	int			unfinished;		/* members not yet finished */
	bool		open;			/* still gathering */
	void	  **members;		/* the engine's deliveries, n of them */
	const CocoEventHeader **msgs;	/* each member's event */
	const char **item_ids;		/* each member's own webhook-id */
	uint64		digest;			/* of the members' event ids, in order */
	char		first_event_id[COCO_MAX_EVENT_ID_LEN + 1];
	char		id[COCO_BATCH_ID_LEN];	/* set when closed */
	char	   *body;			/* the JSON array, set when closed */
	size_t		body_len;
	const char *event;			/* X-Hook-Event: the members' event, or "batch" */
	dlist_node	open_node;		/* in the open batches while open */
} CocoBatch;

extern void coco_batch_init(MemoryContext cxt);

/* whether any batch is open (the unbatched path asks nothing more) */
extern bool coco_batch_any_open(void);
extern CocoBatch *coco_batch_open_of(int64 hook_id);
extern bool coco_batch_takes(const CocoBatch *b, const CocoHookTarget *target,
							 TimestampTz queued_at);
extern CocoBatch *coco_batch_begin(const CocoHookTarget *target,
								   TimestampTz queued_at);
extern bool coco_batch_add(CocoBatch *b, void *member, const CocoEventHeader *msg,
						   const char *event_id, const char *item_id);
extern void coco_batch_close(CocoBatch *b);
extern CocoBatch *coco_batch_pop_due(TimestampTz now);
extern long coco_batch_next_ms(void);
extern bool coco_batch_member_finished(CocoBatch *b);

#endif							/* COCOHOOKS_BATCH_BUILDER_H */
