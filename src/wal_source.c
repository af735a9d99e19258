/*-------------------------------------------------------------------------
 *
 * wal_source.c
 *	  The worker's reader of the events in the WAL (cocohooks.durability =
 *	  wal): the truth behind the shared queue's fast path.  Its start and
 *	  stop, its delivery cursor, its restart point and its retention limit.
 *
 * Backends write every event into the WAL as a logical message
 * (event_emit.c).  The worker reads them back with two cursors:
 *
 *	the scan cursor (wal_scan.c) reads every record once and makes a job
 *	of each committed transaction with events, in commit order;
 *
 *	the delivery cursor (here) reads each job's range again and hands its
 *	messages to the delivery engine, as far as the engine has room, so a
 *	million-row transaction is never all in memory.  Events the shared
 *	queue carried are followed rather than sent again (wal_merge.c).
 *
 * An event's id is the end of its WAL record, the same in the copy the
 * shared queue carries.
 *
 * A physical replication slot (wal_slot.c) reserves the WAL from the
 * restart point: the oldest position still needed, that is the first
 * message of any open transaction or unfinished job, or the scan cursor.
 * After any crash the worker starts reading there again, so an event whose
 * transaction committed is delivered at least once, under the same id.
 * Past cocohooks.max_wal_retention, what holds WAL beyond it is given up
 * (give_up_past_retention).
 *
 * Runs in the worker only.  Invariants: jobs are handed on in commit order
 * (first_unread: those before it are read); a job is freed only when read
 * and finished, oldest first, and the done mark reported to the queue is
 * just before the oldest job left; the restart point never moves back.  All
 * state lives in a memory context of the source, made anew at each start:
 * the context of an earlier start stays, since events still in the engine
 * may point at its jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "cocohooks.h"
#include "delivery_engine.h"
#include "event_message.h"
#include "extension_installed.h"
#include "settings.h"
#include "wal_internal.h"
#include "wal_progress.h"
#include "wal_slot.h"
#include "wal_source.h"
#include "worker_marks.h"

#define IDLE_POLL_MS			200
#define RESTART_INTERVAL_MS		100	/* how often the restart point moves */

WalSourceState coco_wal_state;

static XLogReaderState *deliver_reader = NULL;
static ReadLocalXLogPageNoWaitPrivate deliver_private;
static TimestampTz last_restart_update = 0;
static bool jobs_freed = false;	/* since the restart point last moved */
static XLogRecPtr retention_cut = 0;	/* see coco_wal_retention_cut() */

static void job_event_finished(uint64 lsn, void *source_arg);

/* the engine tells a job when each of the events it handed on finishes */
static const CocoEventSource wal_source = {
	.name = "WAL",
	.finished = job_event_finished,
	.retention_cut = coco_wal_retention_cut,
	.keeps_events = true,
};

/*
 * Takes the replication slot that reserves WAL for the events, or makes
 * one, and positions the scan at its restart point.  Returns false when
 * events are not read from the WAL: in memory mode, when the server cannot
 * keep WAL for them (with a WARNING), or while the extension is not
 * installed (then no slot is kept).
 */
bool
coco_wal_source_start(void)
{
	WalSourceState *st = &coco_wal_state;
	XLogRecPtr	restart;
	MemoryContext old;

	if (!coco_wal_mode())
	{
		coco_warn_if_wal_unavailable();
		coco_wal_slot_drop_own();
		return false;
	}
	if (!coco_extension_installed())
	{
		coco_wal_slot_drop_own();
		return false;
	}

	/*
	 * A new context each time: a context of an earlier start stays, since
	 * events still in the engine may point at its jobs.
	 */
	st->cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks WAL source",
									ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->cxt);

	/* no free slot: the worker stops here and is started again */
	restart = coco_wal_slot_take();

	coco_wal_merge_begin();
	coco_wal_scan_begin(restart);
	deliver_reader = coco_wal_reader_allocate(&deliver_private);
	st->active = true;
	MemoryContextSwitchTo(old);
	ereport(LOG,
			(errmsg("cocohooks worker reads events from the WAL from %X/%X",
					LSN_FORMAT_ARGS(restart))));
	return true;
}

/*
 * The extension was created or dropped: start reading the WAL, or stop and
 * drop the slot so that nothing holds WAL for an extension that is gone.
 */
void
coco_wal_source_recheck(void)
{
	WalSourceState *st = &coco_wal_state;
	bool		installed;

	if (!coco_wal_mode())
		return;
	installed = coco_extension_installed();
	if (installed && !st->active)
		(void) coco_wal_source_start();
	else if (!installed && st->active)
	{
		st->active = false;
		coco_marks_set_wal_done(0);
		coco_wal_scan_end();
		XLogReaderFree(deliver_reader);
		deliver_reader = NULL;
		coco_wal_slot_release_and_drop("the extension was dropped");
	}
}

/*
 * The delivery cursor
 */

/*
 * Starts one event of a job read from the WAL (a copy of it: msg is
 * changed), named after lsn unless it is a redelivery, which keeps its
 * name.
 */
static void
start_from_wal(WalJob *job, CocoEventHeader *msg, uint64 lsn)
{
	if (msg->event_id_len == COCO_WAL_ID_LEN &&
		memcmp(coco_event_id(msg), COCO_WAL_ID_PLACEHOLDER, COCO_WAL_ID_LEN) == 0)
		coco_message_set_wal_id(msg, lsn);
	msg->seq = 0;
	msg->queued_at = job->commit_time;
	job->unfinished++;
	coco_marks_count_queued(1);
	if (job->give_up)
		coco_engine_give_up_event(msg, lsn, &wal_source, job,
								  "given up: WAL retention limit");
	else
		coco_engine_start_event(msg, lsn, &wal_source, job);
}

/*
 * Hands on the events of a batch record from job->next_offset, as long as
 * the engine has room; returns how many it started, and sets *whole when
 * it went through the whole record.  Each is named after
 * its own place in the record (one past its record's start, plus its
 * offset), which no other record's end can be.  Events of a batch were
 * never queued (see pending_events.c).
 */
static int
deliver_batch(WalJob *job, const char *payload, Size len, int *room, bool *whole)
{
	int			started = 0;

	*whole = true;
	while (job->next_offset + sizeof(CocoEventHeader) <= len)
	{
		const CocoEventHeader *in = (const CocoEventHeader *) (payload + job->next_offset);
		CocoEventHeader *msg;

		if (in->total_len < sizeof(CocoEventHeader) || in->total_len > len - job->next_offset)
			break;				/* damaged: nothing more to read in it */
		if (*room <= 0)
		{
			*whole = false;
			break;
		}
		msg = palloc(in->total_len);
		memcpy(msg, in, in->total_len);
		if (msg->event_id_len > 0)
		{
			start_from_wal(job, msg, deliver_reader->ReadRecPtr + 1 + job->next_offset);
			started++;
			(*room)--;
		}
		pfree(msg);
		job->next_offset += in->total_len;
	}
	return started;
}

/*
 * Hands the job's messages on from where the delivery cursor stopped, as
 * long as the engine has room.  Returns how many events it started.
 */
static int
deliver_job(WalJob *job, int *room)
{
	char	   *errormsg;
	int			started = 0;

	XLogBeginRead(deliver_reader, job->next_lsn);
	while (*room > 0 && job->next_lsn < job->end_lsn)
	{
		Size		len;
		bool		transactional;
		bool		batch;
		const char *payload;

		deliver_private.end_of_wal = false;
		if (XLogReadRecord(deliver_reader, &errormsg) == NULL)
		{
			if (!deliver_private.end_of_wal && errormsg)
				ereport(WARNING,
						(errmsg("cocohooks could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(job->next_lsn), errormsg)));
			return started;
		}
		payload = coco_wal_our_message(deliver_reader, &len, &transactional, &batch);
		if (payload != NULL && batch && transactional &&
			coco_wal_job_has_xid(job, XLogRecGetXid(deliver_reader)))
		{
			bool		whole;

			started += deliver_batch(job, payload, len, room, &whole);
			if (!whole)
				return started;	/* no room left: this record again next time */
			job->next_offset = 0;
		}
		else if (payload != NULL && !batch &&
				 (job->nxids == 0 ? deliver_reader->ReadRecPtr == job->first_lsn :
				  transactional && coco_wal_job_has_xid(job, XLogRecGetXid(deliver_reader))))
		{
			uint64		lsn = deliver_reader->EndRecPtr;

			/* the queue carried it: follow it rather than send it again */
			if (!coco_wal_merge_follow_queued(lsn, job) &&
				len >= sizeof(CocoEventHeader))
			{
				CocoEventHeader *msg = palloc(len);

				memcpy(msg, payload, len);
				if (msg->total_len == len && msg->event_id_len > 0)
				{
					/* its copy may still come through the queue: not twice */
					coco_wal_merge_remember_started(lsn);
					start_from_wal(job, msg, lsn);
					started++;
					(*room)--;
				}
				pfree(msg);
			}
		}
		job->next_lsn = deliver_reader->EndRecPtr;
	}
	if (job->next_lsn >= job->end_lsn)
		job->read_all = true;
	return started;
}

/*
 * Hands events of the jobs, oldest first, to the engine while it has room.
 * Returns true if it started any.
 */
bool
coco_wal_source_take(void)
{
	WalSourceState *st = &coco_wal_state;
	MemoryContext old;
	int			room;
	int			started = 0;

	if (!st->active || st->first_unread == NULL || (room = coco_engine_room()) <= 0)
		return false;
	old = MemoryContextSwitchTo(st->cxt);

	/* jobs are handed on in commit order: those before first_unread are read */
	while (st->first_unread != NULL && room > 0)
	{
		WalJob	   *job = st->first_unread;

		started += deliver_job(job, &room);
		if (!job->read_all)
			break;
		st->first_unread = dlist_has_next(&st->jobs, &job->node) ?
			dlist_container(WalJob, node, dlist_next_node(&st->jobs, &job->node)) : NULL;
	}
	MemoryContextSwitchTo(old);
	return started > 0;
}

/*
 * An event the delivery cursor handed on finished.  A job's memory outlives
 * a stop of the source (see the start).
 */
static void
job_event_finished(uint64 lsn, void *source_arg)
{
	((WalJob *) source_arg)->unfinished--;
}

/* True while events are read from the WAL. */
bool
coco_wal_source_reading(void)
{
	return coco_wal_state.active;
}

/*
 * True when every event whose transaction committed before lsn (an end of
 * record) has been handed to the engine, or carried by the queue: the scan
 * has passed lsn and no job that ends before it is left unread.
 */
bool
coco_wal_source_handed_on_through(uint64 lsn)
{
	WalSourceState *st = &coco_wal_state;

	return st->active && st->scan_next >= lsn &&
		(st->first_unread == NULL || st->first_unread->end_lsn >= lsn);
}

/* True while the WAL holds events not yet handed on, or records not scanned. */
bool
coco_wal_source_behind(void)
{
	return coco_wal_state.active &&
		(!coco_wal_state.scan_at_end || coco_wal_state.first_unread != NULL);
}

/*
 * Retention and the restart point
 */

/*
 * Past cocohooks.max_wal_retention, the jobs that hold WAL beyond it give up
 * what they have not handed on yet: those events are logged as failed, with
 * their payload.  Events already handed on (or carried by the queue) whose
 * record is past it are given up by the engine instead of being sent or
 * retried (coco_wal_retention_cut); a request in flight finishes as usual;
 * an open transaction holds its WAL until it ends.
 */
static void
give_up_past_retention(XLogRecPtr restart)
{
	XLogRecPtr	insert;
	uint64		limit;
	dlist_iter	iter;

	retention_cut = 0;
	if (cocohooks_max_wal_retention < 0)
		return;
	insert = GetXLogInsertRecPtr();
	limit = (uint64) cocohooks_max_wal_retention * 1024 * 1024;
	if (insert <= restart || insert - restart <= limit)
		return;
	retention_cut = insert - limit;
	dlist_foreach(iter, &coco_wal_state.jobs)
	{
		WalJob	   *job = dlist_container(WalJob, node, iter.cur);

		if (!job->read_all && !job->give_up && insert - job->first_lsn > limit)
		{
			job->give_up = true;
			ereport(LOG,
					(errmsg("cocohooks gives up the undelivered events of a transaction whose WAL at %X/%X is past \"%s\"",
							LSN_FORMAT_ARGS(job->first_lsn), "cocohooks.max_wal_retention"),
					 errdetail("Each is logged in cocohooks.deliveries as failed, with its payload, and can be sent again with cocohooks.redeliver().")));
		}
	}
}

/*
 * While the WAL kept is past cocohooks.max_wal_retention: the position
 * before which an event's record is too old to be sent or retried; else 0.
 */
uint64
coco_wal_retention_cut(void)
{
	return coco_wal_state.active ? retention_cut : 0;
}

/*
 * The worker just wrote a progress mark from start to end.  It is flushed
 * at once, so that the scan (which reads flushed WAL only) is not held
 * before it until the WAL writer's next flush.  If the scan had read
 * everything before it, with nothing open or unfinished, the mark is the
 * next record and holds no event: the scan steps over it and the done mark
 * moves past it, so that wait_for_deliveries() on an idle database does
 * not wait for the worker to read its own mark.
 */
static void
step_over_mark(XLogRecPtr start, XLogRecPtr end)
{
	WalSourceState *st = &coco_wal_state;

	XLogFlush(end);
	if (!st->scan_at_end || st->scan_next != start || !dlist_is_empty(&st->jobs) ||
		coco_wal_scan_oldest_open(start) != start)
		return;
	st->scan_next = end;
	st->scan_positioned = false;
	coco_marks_set_wal_done(end);
}

/*
 * Frees finished jobs, reports how far everything is finished, and moves
 * the slot's restart point up to the oldest position still needed.
 */
void
coco_wal_source_advance(void)
{
	WalSourceState *st = &coco_wal_state;
	XLogRecPtr	restart;
	XLogRecPtr	done;
	XLogRecPtr	mark_start = InvalidXLogRecPtr;
	XLogRecPtr	mark_end;
	dlist_mutable_iter miter;
	TimestampTz now;

	if (!st->active || !st->scan_positioned)
		return;

	/* jobs finish in any order; the oldest bounds what is done */
	dlist_foreach_modify(miter, &st->jobs)
	{
		WalJob	   *job = dlist_container(WalJob, node, miter.cur);

		if (!job->read_all || job->unfinished > 0)
			break;
		dlist_delete(&job->node);
		st->njobs--;
		pfree(job);
		jobs_freed = true;
	}
	if (!dlist_is_empty(&st->jobs))
		done = dlist_head_element(WalJob, node, &st->jobs)->end_lsn - 1;
	else
		done = st->scan_next;
	coco_marks_set_wal_done(done);

	/* the rest looks at every job: now and then is enough */
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_restart_update, now, RESTART_INTERVAL_MS))
		return;
	last_restart_update = now;

	restart = coco_wal_scan_oldest_open(st->scan_next);
	dlist_foreach_modify(miter, &st->jobs)
	{
		WalJob	   *job = dlist_container(WalJob, node, miter.cur);

		if (!job->read_all || job->unfinished > 0)
			restart = Min(restart, job->first_lsn);
	}

	give_up_past_retention(restart);
	coco_marks_set_wal_restart(restart);
	coco_wal_slot_move_restart(restart, now);
	mark_end = coco_wal_progress_note(restart, jobs_freed, now, &mark_start);
	jobs_freed = false;
	if (!XLogRecPtrIsInvalid(mark_end))
		step_over_mark(mark_start, mark_end);
	coco_wal_merge_forget(restart);
}

/*
 * Milliseconds until the scan should look again: at once while WAL is
 * waiting to be read, else after a short while (pre_* events reach the
 * disk with the WAL writer, and no one wakes us for that), -1 if inactive.
 */
long
coco_wal_source_timeout_ms(void)
{
	if (!coco_wal_state.active)
		return -1;
	if (!coco_wal_state.scan_at_end && coco_wal_state.njobs < WAL_MAX_JOBS)
		return 0;
	return IDLE_POLL_MS;
}

/*
 * Whether no event in the WAL before lsn can be read again: a worker
 * after a crash, or a promoted standby, reads from past it (both the
 * slot's restart point on disk and the last progress mark are).  True
 * when the WAL is not read.
 */
bool
coco_wal_source_read_for_good(uint64 lsn)
{
	if (!coco_wal_state.active)
		return true;
	if (coco_wal_progress_marked() < lsn)
	{
		/* an idle worker marks its progress only when asked */
		coco_wal_progress_want(lsn);
		return false;
	}
	return coco_wal_slot_saved_restart() >= lsn;
}

/* At an orderly exit: the slot's restart point goes to disk. */
void
coco_wal_source_exit(void)
{
	if (coco_wal_state.active)
	{
		coco_wal_slot_save();
		coco_wal_progress_flush();
	}
}
