/*-------------------------------------------------------------------------
 *
 * event_emit.c
 *	  Where an event message leaves the backend that caused it.
 *
 * pre_* events go out at once; post_* events wait for their transaction's
 * commit (pending_events.c).  With cocohooks.durability = wal each message
 * is also written to the WAL as a logical message with prefix "cocohooks":
 * a pre_* one non-transactionally, at once; a post_* one transactionally,
 * as the row is written, so that it precedes the commit record and shares
 * its transaction's fate.  The message then carries the end of its WAL
 * record as its event id, and the shared queue carries the same message as
 * the fast path; the worker's WAL reader (wal_source.c) delivers from the
 * WAL what the queue did not carry, so a full queue drops nothing there.
 *
 * Runs in: backends (the row trigger, the ON CONFLICT tracker of
 * upsert_tracker.c, redeliver()).
 *
 * Invariants:
 *	- called in the caller's memory context (the executor's, for a row);
 *	  may raise errors (WAL insertion), but only before the change's
 *	  transaction commits: nothing here runs in a commit callback;
 *	- a message is written to the WAL before it is queued or kept for
 *	  commit, so the copy carries the WAL record's event id;
 *	- a full ring never fails a write: in wal mode the worker is told the
 *	  event is in the WAL only (worker_marks.c), in memory mode it is
 *	  counted as dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "replication/message.h"

#include "cocohooks.h"
#include "db_slots.h"
#include "event_emit.h"
#include "event_message.h"
#include "event_ring.h"
#include "pending_events.h"
#include "pg_compat.h"
#include "settings.h"
#include "worker_marks.h"

/*
 * Writes a complete message (built with COCO_WAL_ID_PLACEHOLDER as its
 * event id) into the WAL and gives it its id.  Returns the end of its record.
 */
uint64
coco_wal_log_message(char *message, Size len, bool transactional)
{
	uint64		lsn;

	lsn = coco_log_logical_message(COCO_WAL_PREFIX, message, len, transactional);
	coco_message_set_wal_id((CocoEventHeader *) message, lsn);
	return lsn;
}

void
coco_emit_at_once(char *message, Size len)
{
	bool		wal = coco_wal_mode();
	uint64		lsn = 0;

	if (wal)
		lsn = coco_wal_log_message(message, len, false);
	if (coco_ring_push(message, len) == 0)
	{
		/* in the WAL, the worker's reader finds it */
		if (wal)
			coco_marks_note_wal_only(lsn);
		else
			coco_note_dropped(1);
	}
}

/*
 * A redelivered event keeps its id.  In wal mode it goes into the WAL only,
 * transactionally, and the worker's WAL reader sends it once the
 * transaction commits: it is as durable as a fresh event, and no queued
 * copy can be mistaken for the original's (see wal_source.c).
 */
void
coco_emit_redelivery(char *message, Size len)
{
	if (coco_wal_mode())
	{
		(void) coco_log_logical_message(COCO_WAL_PREFIX, message, len, true);
		coco_dbslot_wake_worker();
	}
	else
		coco_pending_add(message, len);
}

void
coco_emit_at_commit(char *message, Size len)
{
	if (coco_wal_mode())
	{
		/* past work_mem: in batches, named by the worker (pending_events.c) */
		if (coco_pending_batching())
		{
			coco_pending_add_batched(message, len);
			return;
		}
		(void) coco_wal_log_message(message, len, true);
	}
	coco_pending_add(message, len);
}

/* Calls emit for each of several messages back to back (one per set of hooks of a row). */
static void
emit_each(char *messages, Size len, void (*emit) (char *message, Size len))
{
	Size		off = 0;

	while (off < len)
	{
		Size		n = ((CocoEventHeader *) (messages + off))->total_len;

		emit(messages + off, n);
		off += n;
	}
}

void
coco_emit_messages_at_once(char *messages, Size len)
{
	emit_each(messages, len, coco_emit_at_once);
}

void
coco_emit_messages_at_commit(char *messages, Size len)
{
	emit_each(messages, len, coco_emit_at_commit);
}
