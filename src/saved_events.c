/*-------------------------------------------------------------------------
 *
 * saved_events.c
 *	  In memory mode, the events a worker leaves unfinished at its exit:
 *	  saved by that worker, delivered by the next.
 *
 * On any orderly exit the worker saves, through event_store.c, every event
 * it has not finished: those the engine holds, those it popped and has not
 * started, and those still in the shared queue (coco_saved_events_save).
 * The next worker loads them (coco_saved_events_load) and starts them
 * before anything from the queue, under the same webhook-ids: they are
 * older, and a document's events go in order.  Events in the WAL are never
 * saved: the WAL source reads them again from its replication slot's
 * restart point.
 *
 * Runs in the worker only.  Invariants: while saved events wait to start
 * (coco_saved_events_waiting), the queue is not popped; the store on disk
 * is removed once all are started (an orderly exit saves what is unfinished
 * again); waiters on wait_for_deliveries() count on the queue alone again
 * (coco_marks_store_requeued) only once every saved event is finished.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "cocohooks.h"
#include "delivery_engine.h"
#include "event_message.h"
#include "event_ring.h"
#include "event_store.h"
#include "saved_events.h"
#include "worker_marks.h"

#define SAVE_BUFFER_INITIAL	(1024 * 1024)

/* events a previous worker saved, not yet started */
static StringInfoData store_backlog;
static Size store_backlog_off = 0;
static bool saved_unfinished = false;	/* some saved events are not finished */
static uint64 saved_until = 0;	/* the engine's count of started events then */

/* the engine learns nothing more of a saved event than of a queued one */
static const CocoEventSource saved_source = {
	.name = "saved events",
	.finished = NULL,
	.retention_cut = NULL,
};

/*
 * Appends the popped events in data[0..len) to buf as carried messages, for
 * the event store; events in the WAL are read again from there.  Returns how
 * many it appended.
 */
static uint64
save_popped(StringInfo buf, const char *data, Size len)
{
	uint64		n = 0;

	for (Size off = 0; off < len;)
	{
		const CocoEventHeader *msg = (const CocoEventHeader *) (data + off);
		char		event_id[COCO_MAX_EVENT_ID_LEN + 1];

		off += msg->total_len;
		if (coco_message_wal_lsn(msg) != 0)
			continue;
		coco_event_id_text(msg, event_id);
		coco_message_append_carried(buf, msg, coco_event_hooks(msg),
									msg->hooks_len, msg->nhooks,
									event_id, msg->attempts);
		n++;
	}
	return n;
}

/*
 * At the worker's exit: saves every unfinished event, held by the engine,
 * popped and not started (popped[0..popped_len)), or still in the shared
 * queue, so that the next worker delivers it; events in the WAL are not
 * saved.  An attempt in flight is not counted as made.  Can raise an
 * error: the caller, a before_shmem_exit callback, catches it.
 */
void
coco_saved_events_save(const char *popped, Size popped_len)
{
	StringInfoData buf;
	char	   *savebuf = palloc(SAVE_BUFFER_INITIAL);
	Size		savebufsize = SAVE_BUFFER_INITIAL;
	uint64		n;

	initStringInfo(&buf);
	n = coco_engine_save_unfinished(&buf);
	/* in the order they came: older than anything still queued */
	if (store_backlog.data && store_backlog_off < (Size) store_backlog.len)
	{
		appendBinaryStringInfo(&buf, store_backlog.data + store_backlog_off,
							   store_backlog.len - store_backlog_off);
		for (Size off = store_backlog_off; off < (Size) store_backlog.len;
			 off += ((CocoEventHeader *) (store_backlog.data + off))->total_len)
			n++;
	}
	n += save_popped(&buf, popped, popped_len);
	for (;;)
	{
		int			npopped;
		Size		needed = 0;
		Size		len = coco_ring_pop(savebuf, savebufsize, INT_MAX, &npopped, &needed);

		if (len == 0 && needed == 0)
			break;
		if (len == 0)
		{
			savebuf = repalloc(savebuf, needed);
			savebufsize = needed;
			continue;
		}
		n += save_popped(&buf, savebuf, len);
	}

	if (n == 0)
		coco_store_remove();
	else if (coco_store_save(buf.data, buf.len, n))
	{
		coco_marks_hand_off_popped();
		ereport(LOG,
				(errmsg("cocohooks worker saved %llu undelivered events for the next worker",
						(unsigned long long) n)));
	}
}

/* True while saved events wait to start: the queue waits behind them. */
bool
coco_saved_events_waiting(void)
{
	return store_backlog.data != NULL;
}

/*
 * Starts the events a previous worker saved, as far as the engine has room,
 * before anything from the queue: they are older, and a document's events
 * go in order.  The store is removed once all are started (an orderly exit
 * saves what is unfinished again); waiters on wait_for_deliveries() are
 * told once all are finished.  Returns true if it started any.
 */
bool
coco_saved_events_start(void)
{
	bool		took = false;

	while (store_backlog.data && store_backlog_off < (Size) store_backlog.len &&
		   coco_engine_room() > 0)
	{
		CocoEventHeader *msg = (CocoEventHeader *) (store_backlog.data + store_backlog_off);

		/* its number was in the previous queue's order, not ours */
		msg->seq = 0;
		coco_marks_count_queued(1);
		coco_engine_start_event(msg, 0, &saved_source, NULL);
		store_backlog_off += msg->total_len;
		took = true;
	}
	if (store_backlog.data && store_backlog_off >= (Size) store_backlog.len)
	{
		uint64		released;

		pfree(store_backlog.data);
		store_backlog.data = NULL;
		store_backlog_off = 0;
		coco_store_remove();
		coco_engine_event_counts(&saved_until, &released);
		saved_unfinished = true;
	}
	return took;
}

/* Once every saved event is finished, waiters may count on the queue alone. */
void
coco_saved_events_note_finished(void)
{
	uint64		started;
	uint64		released;

	if (!saved_unfinished)
		return;
	coco_engine_event_counts(&started, &released);
	if (released >= saved_until)
	{
		saved_unfinished = false;
		coco_marks_store_requeued();
	}
}

/*
 * As the worker starts: loads the events its predecessor saved, and starts
 * the first of them.
 */
void
coco_saved_events_load(void)
{
	uint64		n;

	initStringInfo(&store_backlog);
	n = coco_store_load(&store_backlog);
	if (n == 0)
	{
		pfree(store_backlog.data);
		store_backlog.data = NULL;
		coco_store_remove();
		coco_marks_store_requeued();
		return;
	}
	ereport(LOG,
			(errmsg("cocohooks worker delivers %llu undelivered events saved by the previous worker",
					(unsigned long long) n)));
	(void) coco_saved_events_start();
}
