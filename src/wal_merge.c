/*-------------------------------------------------------------------------
 *
 * wal_merge.c
 *	  In wal mode, the shared queue's copy of an event and the WAL's are
 *	  one event: delivered once, in document order.
 *
 * A backend pushes an event into the shared queue (the fast path) as well
 * as writing it into the WAL; both name it by the end of its WAL record.
 * The worker pops the queue's copy while its delivery cursor
 * (wal_source.c) may meet the WAL's, before or after:
 *
 *	an event popped from the queue is remembered (queued_events) until the
 *	delivery cursor meets it, so that the cursor follows it instead of
 *	sending it again, and counts it as its job's until it finishes;
 *
 *	an event the cursor started is remembered (started_events) in case its
 *	copy still comes through the queue (a backend pushes it just after its
 *	commit record, which the cursor may read first): that copy is skipped;
 *
 *	what the queue could not carry (it was full, or a crash emptied it) is
 *	delivered by the cursor alone, and the queued events of the same
 *	document written later wait for it (see coco_wal_merge_note_popped).
 *
 * Runs in the worker only, while the WAL source is active.  Invariants: an
 * event is started once, by whichever path gets to it first; no more than
 * MAX_REMEMBERED_QUEUED queued events are remembered (popping the queue
 * pauses there); remembered events whose record is before the slot's
 * restart point are forgotten, as the cursor will never meet them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "wal_internal.h"
#include "wal_merge.h"
#include "wal_position.h"
#include "worker_marks.h"

#define MAX_REMEMBERED_QUEUED	200000

typedef struct StartedEvent
{
	uint64		lsn;			/* hash key */
	TimestampTz started;
} StartedEvent;

typedef struct QueuedEvent
{
	uint64		lsn;			/* hash key */
	bool		finished;
	WalJob	   *job;			/* the job that met it while unfinished */
} QueuedEvent;

static HTAB *queued_events = NULL;
static HTAB *started_events = NULL;
static TimestampTz last_expiry = 0;

/* queued events wait until the delivery cursor has handed on everything up to here */
static uint64 hold_until = 0;
static uint64 wal_only_seen = 0;
static bool hold_unknown = false;	/* popped while a COMMIT PREPARED ran */

/*
 * The WAL source starts: nothing is remembered yet.  Called in the WAL
 * source's memory context.
 */
void
coco_wal_merge_begin(void)
{
	queued_events = coco_wal_hash_create("cocohooks queued events", 1024,
										 sizeof(uint64), sizeof(QueuedEvent));
	started_events = coco_wal_hash_create("cocohooks events started from the WAL", 1024,
										  sizeof(uint64), sizeof(StartedEvent));

	/*
	 * Events a previous worker popped and did not finish, and events the
	 * queue lost in a crash, are read again from the WAL: a queued event
	 * of the same document, written later, waits for them.
	 */
	hold_until = coco_wal_last_record_end();
	wal_only_seen = 0;
	hold_unknown = false;
}

/*
 * The delivery cursor met the event of lsn in job: true if the queue
 * carried it, and the cursor is not to send it.  Unfinished, it counts as
 * the job's until it finishes.
 */
bool
coco_wal_merge_follow_queued(uint64 lsn, WalJob *job)
{
	QueuedEvent *qe = hash_search(queued_events, &lsn, HASH_FIND, NULL);

	if (qe == NULL)
		return false;
	if (qe->finished)
		hash_search(queued_events, &lsn, HASH_REMOVE, NULL);
	else
	{
		qe->job = job;
		job->unfinished++;
	}
	return true;
}

/*
 * An event the delivery cursor started: its copy may still reach the queue
 * (a backend pushes it just after its commit record, which the cursor may
 * read first), and must then not be sent again.
 */
void
coco_wal_merge_remember_started(uint64 lsn)
{
	StartedEvent *se;
	bool		found;

	se = hash_search(started_events, &lsn, HASH_ENTER, &found);
	se->started = GetCurrentTimestamp();
}

/*
 * True, once, if the delivery cursor already started the event of this
 * queued copy.
 */
bool
coco_wal_merge_started_from_wal(uint64 lsn)
{
	bool		found = false;

	if (coco_wal_state.active && lsn != 0 && hash_get_num_entries(started_events) > 0)
		hash_search(started_events, &lsn, HASH_REMOVE, &found);
	return found;
}

/*
 * Forgets started events whose queued copy never came (the queue was full):
 * after a minute, or sooner when there are very many.
 */
static void
expire_started(void)
{
	HASH_SEQ_STATUS status;
	StartedEvent *se;
	TimestampTz now = GetCurrentTimestamp();
	int			keep_ms = 60000;

	if (hash_get_num_entries(started_events) == 0 ||
		!TimestampDifferenceExceeds(last_expiry, now, 1000))
		return;
	last_expiry = now;
	if (hash_get_num_entries(started_events) >= MAX_REMEMBERED_QUEUED)
		keep_ms = 1000;
	hash_seq_init(&status, started_events);
	while ((se = hash_seq_search(&status)) != NULL)
	{
		if (TimestampDifferenceExceeds(se->started, now, keep_ms))
			hash_search(started_events, &se->lsn, HASH_REMOVE, NULL);
	}
}

/*
 * The slot's restart point moved to restart: forgets what the delivery
 * cursor will never meet, now and then.
 */
void
coco_wal_merge_forget(XLogRecPtr restart)
{
	expire_started();

	/* queued events the cursor will never meet: before the restart point */
	if (hash_get_num_entries(queued_events) >= MAX_REMEMBERED_QUEUED / 2)
	{
		HASH_SEQ_STATUS status;
		QueuedEvent *qe;

		hash_seq_init(&status, queued_events);
		while ((qe = hash_seq_search(&status)) != NULL)
		{
			if (qe->finished && qe->lsn < restart)
				hash_search(queued_events, &qe->lsn, HASH_REMOVE, NULL);
		}
	}
}

/* An event popped from the queue, to be started: remembered until met. */
void
coco_wal_merge_note_queued(uint64 lsn)
{
	QueuedEvent *qe;
	bool		found;

	if (!coco_wal_state.active || lsn == 0)
		return;
	qe = hash_search(queued_events, &lsn, HASH_ENTER, &found);
	if (!found)
	{
		qe->finished = false;
		qe->job = NULL;
	}
}

/*
 * A queued event of lsn finished: it no longer holds back its job, or the
 * cursor forgets it when it meets it.
 */
void
coco_wal_merge_queued_finished(uint64 lsn)
{
	QueuedEvent *qe;

	if (!coco_wal_state.active)
		return;
	qe = hash_search(queued_events, &lsn, HASH_FIND, NULL);
	if (qe == NULL)
		return;
	if (qe->job != NULL)
	{
		qe->job->unfinished--;
		hash_search(queued_events, &lsn, HASH_REMOVE, NULL);
	}
	else
		qe->finished = true;
}

/*
 * Document order across the two paths.  A backend whose events the queue
 * did not carry says how far they reach in the WAL before it releases its
 * row locks (coco_marks_note_wal_only), so a later event of the same
 * document is queued after that.  Right after popping, the worker notes
 * how far that reaches now; the popped events wait until the delivery
 * cursor has handed on every job that ends there or before, which keeps
 * the engine's start order the commit order.
 */
void
coco_wal_merge_note_popped(void)
{
	uint64		lsn;

	if (!coco_wal_state.active)
		return;
	if (!coco_marks_wal_only(&lsn))
		hold_unknown = true;
	else if (lsn > wal_only_seen)
	{
		wal_only_seen = lsn;
		hold_until = Max(hold_until, lsn);
	}
}

/* True while events popped from the queue must wait (see above). */
bool
coco_wal_merge_holds_popped(void)
{
	WalSourceState *st = &coco_wal_state;

	if (!st->active)
		return false;
	if (hold_unknown)
	{
		uint64		lsn;

		if (!coco_marks_wal_only(&lsn))
			return true;
		hold_unknown = false;
		wal_only_seen = Max(wal_only_seen, lsn);
		hold_until = Max(hold_until, lsn);
	}
	if (hold_until == 0)
		return false;
	if (st->scan_positioned && st->scan_next >= hold_until &&
		(st->first_unread == NULL || st->first_unread->end_lsn > hold_until))
	{
		hold_until = 0;
		return false;
	}
	return true;
}

/* The queue waits while too many of its events await the delivery cursor. */
bool
coco_wal_merge_queue_paused(void)
{
	return coco_wal_state.active &&
		hash_get_num_entries(queued_events) >= MAX_REMEMBERED_QUEUED;
}
