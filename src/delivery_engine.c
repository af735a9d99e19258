/*-------------------------------------------------------------------------
 *
 * delivery_engine.c
 *	  From events to finished, logged deliveries: the worker's dispatcher.
 *
 * Each event handed in becomes one delivery per target hook.  A delivery
 * waits for its hook's pace (hook_pace.c: max_per_second, max_concurrent,
 * and fewer requests at once after a 429 or 503), then for a turn of its
 * receiver (origin_queue.c), is sent by libcurl's multi interface
 * (http_client.c), and on failure with retries left waits to retry
 * (retry_queue.c), then for its hook's pace again.  Each attempt's outcome
 * moves its hook's clock of failures (failing_hooks.c); a hook whose
 * receiver answered 410 Gone, or that failed for
 * cocohooks.disable_failing_hooks_after, is disabled (gone_hooks.c).  Finished deliveries get their log rows
 * (delivery_log.c) in batches, each in one short transaction, and only
 * then count as finished.
 *
 * A hook with batch_size > 1 gets its deliveries in batches
 * (batch_builder.c): each joins its hook's open batch as it starts, and a
 * closed batch goes as one delivery, its first member (its leader): the
 * leader alone waits for its hook's pace, a turn, a retry, and for an
 * ordered hook in its hook's line (one batch of an ordered hook at a time,
 * document order holding across batches); its outcome is every member's,
 * each logged and finished on its own.  A parked batch parks as its
 * members, which are batched again when they come back.  The other members
 * count in active whenever their leader does (weight()).
 *
 * Events are kept in the order they were started, which is the queue's
 * sequence order; the finished mark reported to the queue advances over
 * the finished prefix, so an event is only reported once all its
 * deliveries are done and their log rows committed (wait_for_deliveries()
 * waits on that mark).  A finished event behind an unfinished one keeps
 * only its place: its message is freed at once, and a run of finished
 * events is one entry (event_finished), so the list is bounded by the
 * unfinished events however long one of them waits.  An event's source is
 * told through the callbacks it handed in with the event (CocoEventSource,
 * event_source.h); the engine knows no source by name.  HTTP happens only
 * outside transactions.
 *
 * Memory is bounded by the limit on active deliveries
 * (cocohooks.max_concurrent_deliveries), a multiple of it for deliveries
 * waiting to retry or in documents' lines (retry_policy.c; past them
 * deliveries are parked, parked_retries.c), a bound per hook and a
 * multiple of it in all for deliveries waiting for their hook's pace
 * (hook_pace.c; past them deliveries are parked too, to come back about
 * when the pace reaches them, so that a hook paced slower than its events
 * come holds back no other hook; without the table no new event is taken
 * past the bound on all, and the next ones wait in the queue or the WAL),
 * and one batch of log rows.  Everything lives in the engine's own memory
 * context.
 *
 * WAL is bounded too: an event read from the WAL keeps it (the slot's
 * restart point) until it is finished, and a delivery waiting to retry in
 * memory could keep it for as long as its receiver is down.  So a retry
 * whose event lies more than PARK_WAL_BEHIND bytes behind the end of the
 * WAL is parked, with the deliveries behind it in its document's line
 * (park_retries_behind), whatever its next attempt's time.
 *
 * Runs in: the worker.
 *
 * Invariants: a finished transfer is handled (delivery_done) after
 * libcurl has handed it back, outside its callbacks and outside any
 * transaction, so a full batch of log rows may be written from there;
 * HTTP never runs inside a transaction; an event's source hears of it
 * once, when its last delivery is finished and logged; a delivery is in
 * exactly one of: waiting for its hook's pace, waiting for a turn, in
 * flight, waiting to retry, waiting in its document's line, or waiting for
 * its log row or its parked row, or (batched) gathering in its hook's open
 * batch, or a member behind its batch's leader, in whichever of those
 * states the leader is; active counts those waiting for a turn or in
 * flight, and the members of open batches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "lib/ilist.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "batch_builder.h"
#include "cocohooks.h"
#include "delivery_engine.h"
#include "delivery_log.h"
#include "document_order.h"
#include "event_message.h"
#include "failing_hooks.h"
#include "gone_hooks.h"
#include "hook_pace.h"
#include "hook_settings.h"
#include "hook_stats.h"
#include "http_client.h"
#include "origin_queue.h"
#include "parked_retries.h"
#include "request_headers.h"
#include "retry_policy.h"
#include "retry_queue.h"
#include "settings.h"
#include "signing_keys.h"
#include "worker_marks.h"

#define MAX_LOG_BATCH		1000

/* retries in memory whose event is this far behind the WAL's end are parked */
#define PARK_WAL_BEHIND		((uint64) 16 * 1024 * 1024)
#define PARK_WAL_CHECK_MS	200


typedef struct WorkerEvent
{
	dlist_node	node;
	CocoEventHeader *msg;		/* owned copy of the queued message; NULL
								 * once finished */
	char	   *document_id;	/* for the log: text of the key, or NULL */
	int64		document_key;	/* coco_order_document_key() of its id, once
								 * a delivery of an ordered hook needed it */
	int			remaining;		/* deliveries not yet finished and logged */
	uint64		seq;			/* its number in the queue (0: none), or for
								 * a finished run, its last one's */
	uint64		count;			/* events it stands for: 1, or a finished run's */
	uint64		wal_lsn;		/* its WAL record's end, 0 if not in the WAL */
	const CocoEventSource *source;	/* where it came from (NULL: skipped) */
	void	   *source_arg;		/* for source's callbacks */
	char		event_id[COCO_MAX_EVENT_ID_LEN + 1];
} WorkerEvent;

typedef struct Delivery
{
	WorkerEvent *ev;
	const CocoHookSpec *spec;	/* inside ev->msg: what it carries */
	const CocoHookTarget *target;	/* the settings it names (hook_settings.c) */
	CocoOrigin *origin;			/* the receiver, for admission */
	CocoPaced	pace;			/* its hook's pace, while waiting or admitted */
	dlist_node	wait_node;		/* in origin's queue while waiting */
	bool		sent;			/* holds one of its origin's turns */
	dlist_node	live_node;		/* in live while unfinished */
	CocoRetry	retry;			/* in the retry queue while waiting to retry */
	bool		waiting_retry;
	bool		done;			/* finished, only its log row is pending */
	bool		given_up;		/* failed for good without being sent */
	void	   *line;			/* its document's line, if ordered */
	dlist_node	line_node;		/* in the line, then in ready, while waiting */
	struct curl_slist *headers;
	char		webhook_id[96];
	int			attempts;
	CocoBatch  *batch;			/* the batch it goes in, or NULL: alone */
} Delivery;

/*
 * A batch goes as one delivery, its first member (its leader): the leader
 * alone waits in lines, for pace, for a turn, to retry; the other members
 * only wait for it.  What the leader does counts for the batch's members
 * (active, the counters).
 */
#define leader_of(d)	((Delivery *) (d)->batch->members[0])

/* the deliveries d stands for: its batch's members, or itself */
static inline int
weight(const Delivery *d)
{
	return d->batch ? d->batch->n : 1;
}

static dlist_head events = DLIST_STATIC_INIT(events);
static dlist_head live = DLIST_STATIC_INIT(live);	/* every unfinished delivery */
static int	active = 0;			/* unfinished, not waiting to retry, for
								 * its hook's pace or in a line */
static dlist_head ready = DLIST_STATIC_INIT(ready);	/* first in line now, to send */
static uint64 events_started = 0;
static uint64 events_released = 0;
static CocoStartWatch start_watch = NULL;	/* coco_engine_watch_starts */
/*
 * The members of batches waiting in their hook's line beyond the one entry
 * each batch is there (document_order.c counts entries): counted with
 * them against the lines' bound, so that batches waiting hold no more
 * events than single deliveries may (coco_engine_room).
 */
static int	batch_members_waiting = 0;

static CocoHttp *http = NULL;
static TimestampTz park_wal_checked = 0;
static MemoryContext engine_cxt = NULL;

static CocoLogRow log_rows[MAX_LOG_BATCH];
static Delivery *log_deliveries[MAX_LOG_BATCH];
static int	nlog = 0;

/* parked deliveries whose rows are not written yet (parked_retries.c) */
static Delivery *parked_deliveries[MAX_LOG_BATCH];
static int	nparked = 0;

/*
 * An event's last delivery finished: its message is freed, and it joins
 * the finished events before and after it in the list as one entry, which
 * release_finished_events() counts as that many.  ev may be freed.
 */
static void
event_finished(WorkerEvent *ev)
{
	dlist_node *n;

	pfree(ev->msg);
	ev->msg = NULL;
	if (ev->document_id)
		pfree(ev->document_id);
	ev->document_id = NULL;
	if (dlist_has_prev(&events, &ev->node))
	{
		WorkerEvent *prev = dlist_container(WorkerEvent, node,
											dlist_prev_node(&events, &ev->node));

		if (prev->remaining == 0 && prev->msg == NULL)
		{
			prev->count += ev->count;
			if (ev->seq > 0)
				prev->seq = ev->seq;
			dlist_delete(&ev->node);
			pfree(ev);
			ev = prev;
		}
	}
	if (dlist_has_next(&events, &ev->node))
	{
		WorkerEvent *next;

		n = dlist_next_node(&events, &ev->node);
		next = dlist_container(WorkerEvent, node, n);
		if (next->remaining == 0 && next->msg == NULL)
		{
			ev->count += next->count;
			if (next->seq > 0)
				ev->seq = next->seq;
			dlist_delete(n);
			pfree(next);
		}
	}
}

static void
finish_delivery(Delivery *d)
{
	WorkerEvent *ev = d->ev;

	if (d->headers)
		pfree(d->headers);
	/*
	 * delivery_done() gives its hook's place back with the answer; should
	 * another path ever come here with one, no place may leak
	 */
	Assert(!d->pace.admitted && !d->pace.waiting);
	if (d->pace.admitted)
		coco_pace_release(&d->pace, COCO_PACE_OTHER);
	if (d->pace.waiting)
		coco_pace_remove(&d->pace);
	coco_hook_target_release(d->target);
	dlist_delete(&d->live_node);
	if (d->batch)
		coco_batch_member_finished(d->batch);
	pfree(d);
	active--;
	if (--ev->remaining == 0)
	{
		if (ev->source && ev->source->finished)
			ev->source->finished(ev->wal_lsn, ev->source_arg);
		event_finished(ev);
	}
}

static void send_delivery(Delivery *d);
static void dispatch_batch(CocoBatch *b);
static void delivery_finished(Delivery *d, const CocoHttpResult *r, bool success,
							  char *error);
static char *reason_not_to_send(const Delivery *d);
static void park_delivery(Delivery *d, int made, TimestampTz at);
static void park_batch(CocoBatch *b, int made, TimestampTz at);
static void start_or_give_up(const CocoEventHeader *queued, uint64 wal_lsn,
							 const CocoEventSource *source, void *source_arg,
							 const char *give_up_error);

/*
 * A delivery of an ordered hook finished for good: the next of its
 * document goes to the ready list (sent by send_ready(), not from here,
 * which may be deep in libcurl's callbacks or in a chain of failures).
 */
/* The delivery next in a line, out of the line's waiting ones (from coco_order_leave). */
static Delivery *
line_next(dlist_node *next)
{
	Delivery   *w = dlist_container(Delivery, line_node, next);

	if (w->batch)
		batch_members_waiting -= w->batch->n - 1;
	return w;
}

static void
leave_line(Delivery *d)
{
	dlist_node *next = coco_order_leave(d->line);

	d->line = NULL;
	if (next)
	{
		active += weight(line_next(next));
		dlist_push_tail(&ready, next);
	}
}

/*
 * A delivery that may be sent now (counted in active): its hook's pace,
 * then its receiver's turn.  One its hook's pace holds back waits for it
 * in its hook's line, no longer counted in active; if that line is full
 * (hook_pace.c), it is parked instead, with the deliveries behind it in its
 * document's line, to come back about when its hook's pace reaches it,
 * its attempts unchanged (it was not attempted), and false is returned.
 * One that is not to be sent (reason_not_to_send) makes no request: it
 * skips the pace, and fails at once.
 */
static bool
try_send(Delivery *d)
{
	char	   *skip = reason_not_to_send(d);

	if (skip)
		pfree(skip);
	else
	{
		int			flags = 0;
		TimestampTz park_at;

		if (coco_parked_available())
			flags |= COCO_PACE_MAY_PARK;
		/* new from its source, not a retry: behind its hook's parked ones */
		if (d->ev->source != &coco_parked_source &&
			d->attempts == d->ev->msg->attempts + 1)
			flags |= COCO_PACE_FIRST;
		switch (coco_pace_admit(&d->pace, d->target->hook_id, flags, &park_at))
		{
			case COCO_PACE_ADMITTED:
				break;
			case COCO_PACE_WAITING:
				active -= weight(d);
				return true;
			case COCO_PACE_PARK:
				park_delivery(d, d->attempts - 1, park_at);
				return false;
		}
	}
	if (coco_origin_admit(d->origin, &d->wait_node))
		send_delivery(d);
	return true;
}

/* Sends, in order, the deliveries that became first in their line. */
static void
send_ready(void)
{
	while (!dlist_is_empty(&ready))
		try_send(dlist_container(Delivery, line_node, dlist_pop_head_node(&ready)));
}

/* Sends the deliveries whose hook's pace lets them go now. */
static void
send_paced(void)
{
	CocoPaced  *paced;

	while ((paced = coco_pace_pop_ready()) != NULL)
	{
		Delivery   *d = coco_paced_container(Delivery, pace, paced);

		active += weight(d);
		if (coco_origin_admit(d->origin, &d->wait_node))
			send_delivery(d);
	}
}

/* Deliveries due for retry go back through their origin's admission. */
static void
start_due_retries(void)
{
	TimestampTz now = GetCurrentTimestamp();
	CocoRetry  *retry;

	while ((retry = coco_retry_pop_due(now)) != NULL)
	{
		Delivery   *d = coco_retry_container(Delivery, retry, retry);

		d->waiting_retry = false;
		active += weight(d);
		d->attempts++;
		/* not counted if parked for its pace: counted when taken back */
		if (try_send(d))
			coco_marks_count_deliveries(0, 0, weight(d));
	}
}

/*
 * Parks one delivery, made attempts made, to be tried again at "at";
 * document_key is its document's for an ordered hook, else 0.  It counts
 * as finished once its row is written (coco_engine_flush_log).
 */
static void
park_one(Delivery *d, int made, TimestampTz at, int64 document_key)
{
	if (nparked == MAX_LOG_BATCH || coco_parked_full())
		coco_engine_flush_log();
	coco_parked_add(d->ev->msg, d->spec, d->ev->event_id, d->webhook_id, made,
					at, document_key, d->ev->source, d->ev->source_arg);
	d->done = true;
	parked_deliveries[nparked++] = d;
}

/*
 * Parks the members of a batch, each on a row of its own with its own
 * webhook-id, and, for an ordered hook, its document's key, so that the
 * document's later events park behind it.  Taken back, they are batched
 * again: the batch is formed anew, with an id of its own (docs/reference.md).
 * The batch may be freed once done (its members are finished on a flush).
 */
static void
park_batch(CocoBatch *b, int made, TimestampTz at)
{
	int			n = b->n;
	bool		ordered = (b->target->flags & COCO_SPEC_ORDERED) != 0;
	Delivery  **members = palloc(sizeof(Delivery *) * n);

	/* a flush within park_one may finish the members parked before */
	memcpy(members, b->members, sizeof(Delivery *) * n);
	for (int i = 0; i < n; i++)
	{
		Delivery   *m = members[i];
		int64		key = 0;

		/* hashed as it started (start_or_give_up) */
		if (ordered && m->ev->msg->document_id_len > 0)
			key = m->ev->document_key;
		park_one(m, made, at, key);
	}
	pfree(members);
}

/*
 * Parks a delivery, made attempts made (one that failed, or one its hook's
 * pace holds back), and the deliveries waiting behind it in its document's
 * line, in order: later events of the document are parked behind them
 * (start_or_give_up) until the parked ones have gone.
 */
static void
park_delivery(Delivery *d, int made, TimestampTz at)
{
	void	   *line = d->line;
	int64		key = 0;
	dlist_node *next;

	if (d->batch)
	{
		CocoBatch  *open = NULL;

		/*
		 * A batch's line is its hook's: every batch behind it parks too, and
		 * for an ordered hook the one still gathering, which would otherwise
		 * enter the emptied line and overtake the parked events of its
		 * documents.
		 */
		if (d->batch->target->flags & COCO_SPEC_ORDERED)
			open = coco_batch_open_of(d->batch->hook_id);
		d->line = NULL;
		park_batch(d->batch, made, at);
		while (line && (next = coco_order_leave(line)) != NULL)
		{
			Delivery   *w = line_next(next);

			active += weight(w);
			w->line = NULL;
			if (w->batch)
				park_batch(w->batch, w->attempts - 1, at);
			else
				park_one(w, w->attempts - 1, at, 0);	/* not seen: lines differ */
		}
		if (open)
		{
			/* its members count in active already */
			coco_batch_close(open);
			park_batch(open, ((Delivery *) open->members[0])->attempts - 1, at);
		}
		return;
	}
	/* in a line, its document's key was hashed as it started */
	if (line)
		key = d->ev->document_key;
	d->line = NULL;
	park_one(d, made, at, key);
	while (line && (next = coco_order_leave(line)) != NULL)
	{
		Delivery   *w = line_next(next);

		/* out of the line, as leave_line() counts it, never sent */
		active++;
		w->line = NULL;
		park_one(w, w->attempts - 1, at, key);
	}
}

/*
 * Deliveries waiting in documents' lines are bounded (COCO_ORDER_BACKLOG_FACTOR):
 * when a line whose first delivery waits to retry, or for its hook's pace,
 * brings them to the bound, that line is parked, so that a failing or
 * slowly paced document holds back no other document or hook.
 */
static void
park_line_at_backlog(void *line)
{
	Delivery   *first;

	if (!coco_parked_available() ||
		coco_order_waiting() < cocohooks_max_concurrent_deliveries * COCO_ORDER_BACKLOG_FACTOR)
		return;
	first = dlist_container(Delivery, line_node, coco_order_first(line));
	if (first->waiting_retry)
	{
		coco_retry_remove(&first->retry);
		first->waiting_retry = false;
		active += weight(first);
		park_delivery(first, first->attempts, first->retry.at);
	}
	else if (first->pace.waiting)
	{
		TimestampTz at = coco_pace_remove_to_park(&first->pace);

		active += weight(first);
		park_delivery(first, first->attempts - 1, at);
	}
}

/*
 * The worker disables the hook now (gone_hooks.c): its clock of failures
 * stops, and its deliveries waiting to retry in memory become due, and
 * those waiting for its pace go to the ready list, so that they are failed
 * and logged now rather than at their time (its parked ones are made due
 * when the hook is disabled, delivery_log.c).
 */
static void
disable_hook(int64 hook_id, const char *reason, const char *not_sent)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_iter	iter;

	coco_gone_note(hook_id, reason, not_sent);
	coco_failing_note_disabled(hook_id);
	dlist_foreach(iter, &live)
	{
		Delivery   *w = dlist_container(Delivery, live_node, iter.cur);

		if (w->waiting_retry && w->target->hook_id == hook_id && w->retry.at > now)
		{
			coco_retry_remove(&w->retry);
			coco_retry_add(&w->retry, now);
		}
		else if (w->pace.waiting && w->target->hook_id == hook_id)
		{
			/* first in its document's line if ordered: line_node is free */
			coco_pace_remove(&w->pace);
			active += weight(w);
			dlist_push_tail(&ready, &w->line_node);
		}
	}
}

/*
 * The receiver answered 410 Gone: it wants no more.  Disables the hook
 * and holds back its events, before the turn freed by d sends the next.
 */
static void
disable_gone(const Delivery *d)
{
	char	   *now = pstrdup(timestamptz_to_str(GetCurrentTimestamp()));
	char	   *reason = psprintf("receiver answered 410 Gone at %s", now);
	char	   *not_sent = psprintf("not sent: the receiver answered 410 Gone at %s and the hook was disabled",
									now);

	disable_hook(d->target->hook_id, reason, not_sent);
	ereport(LOG,
			(errmsg("cocohooks disabled hook %lld: its receiver answered 410 Gone",
					(long long) d->target->hook_id),
			 errdetail("URL: %.*s. Its events written before this answer are not sent; enable_hook() enables it again.",
					   d->target->url_len, d->target->url)));
	pfree(now);
	pfree(reason);
	pfree(not_sent);
}

/*
 * An attempt of d failed: the hook's clock of failures
 * (failing_hooks.c).  If it has failed, with no success, for
 * cocohooks.disable_failing_hooks_after, disables the hook and returns
 * why (palloc'd), for d's log row; else NULL.
 */
static char *
disable_if_failing_too_long(const Delivery *d)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz since = coco_failing_note_failure(d->target->hook_id, now);
	char	   *since_text;
	char	   *reason;
	char	   *not_sent;

	if (since == 0 || cocohooks_disable_failing_hooks_after <= 0 ||
		!TimestampDifferenceExceeds(since, now, cocohooks_disable_failing_hooks_after))
		return NULL;

	since_text = pstrdup(timestamptz_to_str(since));
	reason = psprintf("no delivery succeeded since %s (cocohooks.disable_failing_hooks_after = %s)",
					  since_text,
					  GetConfigOptionByName("cocohooks.disable_failing_hooks_after", NULL, false));
	not_sent = psprintf("not sent: the hook was disabled at %s: %s",
						timestamptz_to_str(now), reason);
	disable_hook(d->target->hook_id, reason, not_sent);
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("cocohooks disabled hook %lld: no delivery to it succeeded since %s",
					(long long) d->target->hook_id, since_text),
			 errdetail("URL: %.*s. Its events written before now are not sent and are logged as failed in cocohooks.deliveries, with their payload.",
					   d->target->url_len, d->target->url),
			 errhint("Once the receiver works, enable_hook() enables the hook again and redeliver() sends the logged deliveries. \"%s\" sets how long a hook may fail.",
					 "cocohooks.disable_failing_hooks_after")));
	pfree(since_text);
	pfree(not_sent);
	return reason;
}

/*
 * Parks the retries waiting in memory whose event is more than
 * PARK_WAL_BEHIND bytes behind the end of the WAL, so that the slot's
 * restart point can pass them: a receiver down for long keeps no more WAL
 * than that (and than the deliveries in flight).  The live list is in the
 * order events were started, which is their WAL order for each source;
 * the walk stops at the first delivery whose event is recent, and looks at
 * most every PARK_WAL_CHECK_MS, for MAX_LOG_BATCH retries at most.
 * Outside libcurl and any transaction.
 */
static void
park_retries_behind(void)
{
	TimestampTz now;
	XLogRecPtr	insert;
	uint64		cutoff;
	dlist_iter	iter;
	Delivery  **found;
	int			nfound = 0;

	if (coco_retry_count() == 0 || !coco_parked_available())
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(park_wal_checked, now, PARK_WAL_CHECK_MS))
		return;
	park_wal_checked = now;
	insert = GetXLogInsertRecPtr();
	if (insert <= PARK_WAL_BEHIND)
		return;
	cutoff = insert - PARK_WAL_BEHIND;

	/*
	 * First the retries to park, then the parking: parking may write rows
	 * and free deliveries parked before (never one waiting to retry).
	 */
	found = palloc(sizeof(Delivery *) * MAX_LOG_BATCH);
	dlist_foreach(iter, &live)
	{
		Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

		if (d->ev->wal_lsn == 0)
			continue;			/* not in the WAL: parked, saved, memory mode */
		if (d->ev->wal_lsn > cutoff || nfound == MAX_LOG_BATCH)
			break;
		/* in flight, in a line or done: soon finished or parked anyway */
		if (d->waiting_retry)
			found[nfound++] = d;
	}
	for (int i = 0; i < nfound; i++)
	{
		Delivery   *d = found[i];

		coco_retry_remove(&d->retry);
		d->waiting_retry = false;
		active += weight(d);
		park_delivery(d, d->attempts, d->retry.at);
	}
	pfree(found);
}

static void
delivery_done(void *arg, const CocoHttpResult *r)
{
	Delivery   *d = (Delivery *) arg;
	const CocoEventHeader *msg = d->ev->msg;
	bool		success = (r->error == NULL && r->status >= 200 && r->status < 300);
	char	   *error = NULL;
	char	   *disabled = NULL;
	bool		held_back = false;

	if (!d->given_up)
	{
		/* a batch's attempt is each member's (its counters are per event) */
		for (int i = weight(d); i > 0; i--)
			coco_hook_stats_attempt(d->target->hook_id, r);
	}
	if (d->pace.admitted)
		coco_pace_release(&d->pace,
						  success ? COCO_PACE_SUCCESS :
						  d->given_up ? COCO_PACE_NOT_SENT :
						  (r->status == 429 || r->status == 503) ?
						  COCO_PACE_SLOW_DOWN : COCO_PACE_OTHER);
	if (success)
		coco_failing_note_success(d->target->hook_id);
	else if (!d->given_up && r->status == 410)
		disable_gone(d);
	else if (!d->given_up)
	{
		char	   *held = coco_gone_skips(d->target->hook_id, msg->queued_at);

		/* sent before its hook was disabled: no retry, and no new clock */
		if (held)
		{
			held_back = true;
			pfree(held);
		}
		else
			disabled = disable_if_failing_too_long(d);
	}
	if (d->sent)
	{
		CocoOrigin *origin = d->origin;
		dlist_node *next;

		d->sent = false;
		/* an answer over HTTP/2 lets more of the origin's waiters go at once */
		if (r->status > 0)
			coco_origin_note_protocol(origin, r->multiplexed);
		next = coco_origin_release(origin);
		while (next)
		{
			send_delivery(dlist_container(Delivery, wait_node, next));
			next = coco_origin_next_waiter(origin);
		}
	}

	if (d->headers)
	{
		pfree(d->headers);
		d->headers = NULL;
	}

	if (!success)
	{
		TimestampTz retry_at;

		switch (coco_failure_step(msg, d->target,
								  d->batch ? d->batch->id : d->webhook_id, d->attempts,
								  d->given_up || disabled != NULL || held_back, d->line != NULL,
								  r, &retry_at, &error))
		{
			case COCO_RETRY_PARKED:
				pfree(error);
				park_delivery(d, d->attempts, retry_at);
				return;
			case COCO_RETRY_IN_MEMORY:
				/* waits in worker memory, holding no place in the shared queue */
				pfree(error);
				d->waiting_retry = true;
				active -= weight(d);
				coco_retry_add(&d->retry, retry_at);
				return;
			case COCO_FAILED_FOR_GOOD:
				if (disabled)
				{
					char	   *plain = error;

					error = psprintf("%s; the hook was disabled: %s", plain, disabled);
					pfree(plain);
					pfree(disabled);
				}
				else if (held_back)
				{
					char	   *plain = error;

					error = psprintf("%s; not retried: the hook was disabled", plain);
					pfree(plain);
				}
				break;
		}
	}
	if (d->batch == NULL)
	{
		delivery_finished(d, r, success, error);
		return;
	}

	/*
	 * A batch's outcome is each member's: a log row each (or finished at
	 * once), the error copied for each; the batch is freed with its last.
	 */
	{
		CocoBatch  *b = d->batch;
		int			n = b->n;
		Delivery  **members = palloc(sizeof(Delivery *) * n);

		memcpy(members, b->members, sizeof(Delivery *) * n);
		for (int i = 1; i < n; i++)
		{
			members[i]->attempts = d->attempts;
			members[i]->given_up = d->given_up;
		}
		for (int i = 0; i < n; i++)
			delivery_finished(members[i], r, success,
							  i == n - 1 || error == NULL ? error : pstrdup(error));
		pfree(members);
	}
}

/*
 * A delivery (or a batch's member) finished for good, with r its last
 * attempt's outcome and error (palloc'd, taken over) its log row's: the
 * counters, the next in its line, its log row, or finished now.
 */
static void
delivery_finished(Delivery *d, const CocoHttpResult *r, bool success, char *error)
{
	const CocoEventHeader *msg = d->ev->msg;

	coco_marks_count_deliveries(success ? 1 : 0, success ? 0 : 1, 0);
	coco_hook_stats_finished(d->target->hook_id, success, d->attempts > 0,
							 msg->queued_at);
	if (d->line)
		leave_line(d);

	if (cocohooks_log_deliveries == COCO_LOG_ALL ||
		(!success && cocohooks_log_deliveries == COCO_LOG_FAILURES))
	{
		CocoLogRow *row;

		/* we are outside libcurl and any transaction: safe to write now */
		if (nlog == MAX_LOG_BATCH)
			coco_engine_flush_log();
		row = &log_rows[nlog];

		row->hook_id = d->target->hook_id;
		row->event = coco_event_names[coco_event_kind(msg)];
		row->collection = pnstrdup(coco_event_collection(msg), msg->collection_len);
		row->document_id = d->ev->document_id;
		row->success = success;
		row->status_code = r->status;
		row->error = error;
		row->attempts = d->attempts;
		row->duration_ms = r->duration_ms;
		row->queued_at = msg->queued_at;
		row->finished_at = GetCurrentTimestamp();
		row->webhook_id = d->webhook_id;
		row->batch_id = d->batch ? d->batch->id : NULL;
		/* kept for redeliver(): failures always, everything when all is logged */
		row->payload = coco_event_body(msg);
		row->payload_len = msg->body_len;
		row->response = (r->response_len > 0 || r->status > 0) ?
			coco_log_text(r->response, r->response_len) : NULL;
		d->done = true;
		log_deliveries[nlog++] = d;
	}
	else
	{
		if (error)
			pfree(error);
		finish_delivery(d);
	}
}

/*
 * Writes pending log rows, in one transaction, then lets their deliveries
 * count as finished.  Can raise an error (the worker then exits, and its
 * unfinished events are saved).
 */
void
coco_engine_flush_log(void)
{
	CocoHookDisable *disables;
	int			ndisables;

	/* parked deliveries are finished once their rows are */
	coco_parked_flush();
	for (int i = 0; i < nparked; i++)
		finish_delivery(parked_deliveries[i]);
	nparked = 0;

	ndisables = coco_gone_pending(&disables);
	if (nlog == 0 && ndisables == 0 && !coco_failing_dirty())
		return;
	/* the hooks' clocks of failures are written in the same transaction */
	if (coco_log_write(log_rows, nlog, disables, ndisables))
	{
		coco_gone_written();
		coco_failing_written();
	}
	for (int i = 0; i < nlog; i++)
	{
		if (log_rows[i].error)
			pfree((char *) log_rows[i].error);
		if (log_rows[i].response)
			pfree((char *) log_rows[i].response);
		pfree((char *) log_rows[i].collection);
		finish_delivery(log_deliveries[i]);
	}
	nlog = 0;
}

/* Reports the finished prefix of the event list and frees it. */
static void
release_finished_events(void)
{
	uint64		finished = 0;

	while (!dlist_is_empty(&events))
	{
		WorkerEvent *ev = dlist_head_element(WorkerEvent, node, &events);

		if (ev->remaining > 0)
			break;
		/* events read from the WAL were never in the queue: no number */
		if (ev->seq > 0)
			finished = ev->seq;
		events_released += ev->count;
		dlist_delete(&ev->node);
		if (ev->msg)
			pfree(ev->msg);
		if (ev->document_id)
			pfree(ev->document_id);
		pfree(ev);
	}
	if (finished > 0)
	{
		/*
		 * The mark wakes wait_for_deliveries(): cocohooks.stats must show
		 * the deliveries in flight as they are once it returns.
		 */
		coco_marks_set_in_flight(coco_engine_in_flight());
		coco_marks_finish_upto(finished);
	}
}

/*
 * Why a delivery about to be sent (or retried) is not: the worker disabled
 * its hook (410 Gone, or failing too long) after its event was written, or
 * its event's WAL record is past cocohooks.max_wal_retention.  NULL if it
 * goes.
 */
static char *
reason_not_to_send(const Delivery *d)
{
	char	   *disabled = coco_gone_skips(d->target->hook_id, d->ev->msg->queued_at);

	if (disabled)
		return disabled;
	if (d->ev->wal_lsn != 0 && d->ev->source->retention_cut &&
		d->ev->wal_lsn <= d->ev->source->retention_cut())
		return pstrdup("given up: WAL retention limit");
	return NULL;
}

/*
 * Sends a delivery that holds a turn of its origin.  If libcurl refuses
 * the transfer, the delivery fails at once (which frees the turn for the
 * next one).  A delivery that is not to be sent (reason_not_to_send) fails
 * at once, and its turn goes to the next waiting delivery, in a loop rather
 * than by recursion (a gone receiver may have thousands waiting).
 */
static void
send_delivery(Delivery *d)
{
	char	   *skip;

	while ((skip = reason_not_to_send(d)) != NULL)
	{
		dlist_node *next = coco_origin_release(d->origin);
		CocoHttpResult r = {0};

		r.error = skip;
		d->given_up = true;
		d->attempts--;
		delivery_done(d, &r);
		pfree((char *) r.error);
		if (next == NULL)
			return;
		d = dlist_container(Delivery, wait_node, next);
	}

	{
		const CocoEventHeader *msg = d->ev->msg;
		char	   *url = pnstrdup(d->target->url, d->target->url_len);
		const CocoBatch *b = d->batch;
		const char *body = b ? b->body : coco_event_body(msg);
		size_t		body_len = b ? b->body_len : msg->body_len;

		d->sent = true;
		/* a batch carries its first event's trace context, if any */
		d->headers = coco_request_headers(msg,
										  b ? b->event : coco_event_names[coco_event_kind(msg)],
										  d->target, b ? b->id : d->webhook_id,
										  coco_signing_keys_for(d->target->hook_id),
										  body, body_len);
		if (!coco_http_post(http, url, d->headers, body, body_len,
							d->target->timeout_ms, d))
		{
			CocoHttpResult r = {0};

			r.error = "could not start the HTTP request";

			delivery_done(d, &r);
		}
		pfree(url);
	}
}

/*
 * Whether a delivery to the hook is unfinished in memory (its settings
 * may not be forgotten yet: settings_retirement.c).
 */
bool
coco_engine_uses_hook(int64 hook_id)
{
	dlist_iter	iter;

	dlist_foreach(iter, &live)
	{
		Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

		if (d->target->hook_id == hook_id)
			return true;
	}
	return false;
}

/*
 * watch is told of every event before the engine starts it (not of those
 * given up): a source that must know what went ahead of its own events
 * (backfill_source.c) looks there.
 */
void
coco_engine_watch_starts(CocoStartWatch watch)
{
	start_watch = watch;
}

/*
 * Starts one delivery per target hook of an event; the message is copied.
 * Call only while coco_engine_room() is positive.  An event in the WAL, its
 * record ending at wal_lsn (0 if none), is reported finished to its
 * source's callback with source_arg.
 */
void
coco_engine_start_event(const CocoEventHeader *queued, uint64 wal_lsn,
						const CocoEventSource *source, void *source_arg)
{
	start_or_give_up(queued, wal_lsn, source, source_arg, NULL);
}

/*
 * Gives an event up without sending it: each of its deliveries fails for
 * good with the given error and is logged with its payload, so that
 * redeliver() can still send it.  Takes room like coco_engine_start_event().
 */
void
coco_engine_give_up_event(const CocoEventHeader *msg, uint64 wal_lsn,
						  const CocoEventSource *source, void *source_arg,
						  const char *error)
{
	start_or_give_up(msg, wal_lsn, source, source_arg, error);
}

/* Why d is not sent: the settings its event names are gone (palloc'd). */
static char *
missing_settings(const Delivery *d)
{
	return psprintf("not sent: settings version %u of hook %lld is not in the catalog",
					d->target->settings_version, (long long) d->target->hook_id);
}

static void
start_or_give_up(const CocoEventHeader *queued, uint64 wal_lsn,
				 const CocoEventSource *source, void *source_arg,
				 const char *give_up_error)
{
	MemoryContext old;
	WorkerEvent *ev;
	const char *p;
	bool		keyed = false;	/* ev->document_key is set */

	coco_hook_settings_refresh();
	if (start_watch != NULL && give_up_error == NULL)
		start_watch(queued, source);
	old = MemoryContextSwitchTo(engine_cxt);
	ev = palloc(sizeof(WorkerEvent));

	ev->msg = palloc(queued->total_len);
	memcpy(ev->msg, queued, queued->total_len);
	ev->document_id = coco_event_document_id_text(ev->msg);
	ev->document_key = 0;
	ev->remaining = ev->msg->nhooks;
	ev->seq = ev->msg->seq;
	ev->count = 1;
	ev->wal_lsn = wal_lsn;
	ev->source = source;
	ev->source_arg = source_arg;
	coco_event_id_text(ev->msg, ev->event_id);
	dlist_push_tail(&events, &ev->node);
	events_started++;

	p = coco_event_hooks(ev->msg);
	/* once its last delivery has finished, ev may be freed */
	for (int i = 0, nhooks = ev->msg->nhooks; i < nhooks; i++)
	{
		const CocoHookSpec *spec = (const CocoHookSpec *) p;
		Delivery   *d = palloc0(sizeof(Delivery));

		p += spec->spec_len;
		d->ev = ev;
		d->spec = spec;
		d->target = coco_hook_target_get(spec);
		d->attempts = ev->msg->attempts + 1;
		snprintf(d->webhook_id, sizeof(d->webhook_id), "%s_%lld",
				 ev->event_id, (long long) spec->hook_id);
		d->origin = coco_origin_for_url(d->target->url, d->target->url_len);
		dlist_push_tail(&live, &d->live_node);
		/* a parked delivery taken back was counted when it came first */
		if (source != &coco_parked_source)
			coco_hook_stats_queued(d->target->hook_id);
		if (give_up_error || d->target->missing)
		{
			CocoHttpResult r = {0};
			char	   *missing = NULL;

			/* not sent: no place in its document's line */
			active++;
			d->given_up = true;
			d->attempts = ev->msg->attempts;
			if (give_up_error)
				r.error = give_up_error;
			else
				r.error = missing = missing_settings(d);
			delivery_done(d, &r);
			if (missing)
				pfree(missing);
			continue;
		}
		/* a batch of the hook still open ends before an event not for it */
		if (coco_batch_any_open())
		{
			CocoBatch  *open = coco_batch_open_of(d->target->hook_id);

			if (open && (d->target->batch_size <= 1 ||
						 !coco_batch_takes(open, d->target, ev->msg->queued_at)))
				dispatch_batch(open);
		}
		if ((d->target->flags & COCO_SPEC_ORDERED) && ev->msg->document_id_len > 0)
		{
			/* hashed once per event, for all its ordered hooks and parkings */
			if (!keyed)
			{
				ev->document_key = coco_order_document_key(coco_event_document_id(ev->msg),
														   ev->msg->document_id_len);
				keyed = true;
			}
			if (coco_parked_holds(d->target->hook_id, ev->document_key, source))
			{
				/* an earlier event of its document is parked: behind it */
				active++;
				park_one(d, ev->msg->attempts, GetCurrentTimestamp(),
						 ev->document_key);
				continue;
			}
			/* a batch waits in its hook's line, not its documents' */
			if (d->target->batch_size <= 1 &&
				!coco_order_enter(d->target->hook_id, ev->document_key,
								  &d->line_node, &d->line))
			{
				/* waits for an earlier event of its document */
				park_line_at_backlog(d->line);
				continue;
			}
		}
		active++;
		if (d->target->batch_size > 1)
		{
			CocoBatch  *b = coco_batch_open_of(d->target->hook_id);

			if (b == NULL)
				b = coco_batch_begin(d->target, ev->msg->queued_at);
			d->batch = b;
			if (coco_batch_add(b, d, ev->msg, ev->event_id, d->webhook_id))
				dispatch_batch(b);
			continue;
		}
		try_send(d);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Closes an open batch and sends it as one delivery, its first member:
 * for an ordered hook, after the hook's batch before it (one batch of an
 * ordered hook at a time, so that its documents' events stay in order
 * across batches; docs/reference.md).  Its members are counted in active
 * already.
 */
static void
dispatch_batch(CocoBatch *b)
{
	Delivery   *leader = (Delivery *) b->members[0];

	coco_batch_close(b);
	/* the hook's line: the key of the empty id, which no document has */
	if ((b->target->flags & COCO_SPEC_ORDERED) &&
		!coco_order_enter(b->hook_id, coco_order_document_key("", 0),
						  &leader->line_node, &leader->line))
	{
		/* waits for the hook's batch before it */
		active -= b->n;
		batch_members_waiting += b->n - 1;
		park_line_at_backlog(leader->line);
		return;
	}
	try_send(leader);
}

/* Sends the open batches whose batch_wait has passed. */
static void
dispatch_due_batches(void)
{
	TimestampTz now;
	CocoBatch  *b;

	if (!coco_batch_any_open())
		return;
	now = GetCurrentTimestamp();
	while ((b = coco_batch_pop_due(now)) != NULL)
		dispatch_batch(b);
}

/*
 * A queued event that is already being delivered from elsewhere (the WAL
 * reader got to it first): nothing to send, but its place in the queue's
 * order must still be reported finished.
 */
void
coco_engine_note_skipped(const CocoEventHeader *queued)
{
	WorkerEvent *ev;

	events_started++;
	if (!dlist_is_empty(&events))
	{
		ev = dlist_tail_element(WorkerEvent, node, &events);
		if (ev->remaining == 0 && ev->msg == NULL)
		{
			/* one more in the finished run at the end */
			ev->count++;
			if (queued->seq > 0)
				ev->seq = queued->seq;
			return;
		}
	}
	ev = MemoryContextAllocZero(engine_cxt, sizeof(WorkerEvent));
	ev->seq = queued->seq;
	ev->count = 1;
	dlist_push_tail(&events, &ev->node);
}

void
coco_engine_init(void)
{
	engine_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks delivery engine",
									   ALLOCSET_DEFAULT_SIZES);
	coco_retry_init();
	coco_order_init(engine_cxt);
	coco_pace_init(engine_cxt);
	coco_batch_init(engine_cxt);
	http = coco_http_create(delivery_done);
	coco_engine_apply_settings();
}

/* Applies the settings a reload may have changed. */
void
coco_engine_apply_settings(void)
{
	coco_http_set_limits(http, cocohooks_max_host_connections);
	coco_origin_set_limits(cocohooks_max_host_connections, cocohooks_max_host_streams);
}

/* The socket that becomes readable when libcurl has work. */
int
coco_engine_wait_fd(void)
{
	return coco_http_wait_fd(http);
}

int
coco_engine_room(void)
{
	/*
	 * An event is at least one delivery: never start past the limit.  The
	 * lines of hooks' paces stop intake only when what cannot be parked
	 * fills them: everything without the table (a catalog older than
	 * 0.3.0), else the requests of hooks without a pace of their own, held
	 * back by a window their receivers' 429s or 503s lowered (hook_pace.c).
	 * A paced hook's request past its line's bound, or the bound on all
	 * lines, is parked.
	 */
	if (nlog >= MAX_LOG_BATCH / 2 ||
		coco_order_waiting() + batch_members_waiting >=
		cocohooks_max_concurrent_deliveries * COCO_ORDER_BACKLOG_FACTOR ||
		(coco_pace_waiting() >= cocohooks_max_concurrent_deliveries * COCO_PACE_BACKLOG_FACTOR &&
		 (!coco_parked_available() ||
		  coco_pace_waiting_unpaced() >= cocohooks_max_concurrent_deliveries * COCO_PACE_BACKLOG_FACTOR)))
		return 0;
	return Max(cocohooks_max_concurrent_deliveries - active, 0);
}

/*
 * Hooks whose pace became faster while deliveries of theirs were parked
 * for it: their parked rows come due sooner alike (written first, so that
 * none still pending is missed).  Outside any transaction.
 */
static void
pull_in_parked(void)
{
	int64		hook_id;
	TimestampTz since;
	double		factor;
	bool		flushed = false;

	while (coco_pace_pop_speedup(&hook_id, &since, &factor))
	{
		if (!flushed)
			coco_engine_flush_log();
		flushed = true;
		coco_parked_pull_in(hook_id, since, factor);
	}
}

/*
 * What the engine holds of each hook, for its statistics: about once a
 * second, and at once when it holds nothing.
 */
static void
publish_held(void)
{
	dlist_iter	iter;

	if (!coco_hook_stats_held_due(dlist_is_empty(&live)))
		return;
	dlist_foreach(iter, &live)
	{
		Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

		coco_hook_stats_held(d->target->hook_id, d->ev->msg->queued_at,
							 (d->batch && !d->batch->open && !d->done) ?
							 leader_of(d)->waiting_retry : d->waiting_retry);
	}
	coco_hook_stats_held_publish();
}

void
coco_engine_progress(void)
{
	MemoryContext old;

	coco_hook_settings_refresh();
	old = MemoryContextSwitchTo(engine_cxt);
	park_retries_behind();
	dispatch_due_batches();
	start_due_retries();
	send_ready();
	send_paced();
	coco_http_drive(http);
	coco_engine_flush_log();
	send_ready();
	send_paced();
	pull_in_parked();
	/* before the marks that wake wait_for_deliveries() */
	publish_held();
	release_finished_events();
	MemoryContextSwitchTo(old);
}

/* Writes the requests posted since the last round (the worker is about to wait). */
void
coco_engine_send_posted(void)
{
	coco_http_flush(http);
}

long
coco_engine_timeout_ms(void)
{
	long		timeout = coco_http_timeout_ms(http);
	long		retry_ms = coco_retry_next_ms();
	long		pace_ms = coco_pace_next_ms();
	long		stats_ms = coco_hook_stats_timeout_ms();
	long		batch_ms = coco_batch_next_ms();

	if (retry_ms >= 0 && (timeout < 0 || retry_ms < timeout))
		timeout = retry_ms;
	if (stats_ms >= 0 && (timeout < 0 || stats_ms < timeout))
		timeout = stats_ms;
	if (pace_ms >= 0 && (timeout < 0 || pace_ms < timeout))
		timeout = pace_ms;
	if (batch_ms >= 0 && (timeout < 0 || batch_ms < timeout))
		timeout = batch_ms;
	return timeout;
}

/*
 * Deliveries not yet finished, retries and deliveries in line or waiting
 * for their hook's pace included.
 */
int
coco_engine_in_flight(void)
{
	return active + coco_retry_count() + coco_order_waiting() + coco_pace_waiting();
}

/* Deliveries waiting for a turn at their receiver: an answer frees one. */
int
coco_engine_waiting_for_turn(void)
{
	return coco_origin_waiting();
}

/*
 * How many events were started, and how many of the oldest are finished and
 * released: once released reaches a count that started had, every event
 * started until then is finished.
 */
void
coco_engine_event_counts(uint64 *started, uint64 *released)
{
	*started = events_started;
	*released = events_released;
}

/*
 * Appends every unfinished delivery to buf as a message carrying its one
 * hook, its event's id and the attempts made (one in flight is not counted
 * as made).  Returns how many.  For the worker's exit: must be called with
 * the log flushed.
 */
uint64
coco_engine_save_unfinished(StringInfo buf)
{
	dlist_iter	iter;
	uint64		n = 0;

	dlist_foreach(iter, &live)
	{
		Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

		const Delivery *s = (d->batch && !d->batch->open) ? leader_of(d) : d;

		/* events in the WAL or parked are read again from there */
		if (d->done || d->ev->wal_lsn != 0 || (d->ev->source && d->ev->source->keeps_events))
			continue;
		/* a batch's members are saved one by one, batched again when read */
		coco_message_append_carried(buf, d->ev->msg,
									(const char *) d->spec, d->spec->spec_len, 1,
									d->ev->event_id,
									s->waiting_retry ? s->attempts : s->attempts - 1);
		n++;
	}
	return n;
}
