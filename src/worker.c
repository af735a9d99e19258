/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that delivers queued events.
 *
 * One worker serves the database named by cocohooks.database.  Its loop:
 *
 *	wait (latch, postmaster death, HTTP sockets, libcurl's timer, the next
 *	retry or log pruning)
 *	-> reset latch -> CHECK_FOR_INTERRUPTS -> reload settings if asked
 *	-> queue again any events a previous worker saved
 *	-> pop events from the shared queue while fewer than
 *	   cocohooks.max_concurrent_deliveries deliveries are active, and
 *	   start one delivery per event and target hook
 *	-> start the retries that are due
 *	-> let libcurl progress, collect finished attempts: a failure with
 *	   retries left waits in a heap ordered by due time
 *	-> write the batch of log rows in one short transaction
 *	-> report, through the queue, the sequence number up to which every
 *	   event is finished and logged (wait_for_deliveries() waits on it)
 *	-> now and then, delete log rows past cocohooks.log_retention.
 *
 * Events are kept in the order they were popped, which is sequence order;
 * the finished mark advances over the finished prefix, so an event is only
 * reported once all its deliveries are done and their log rows committed.
 * HTTP happens only outside transactions.  Deliveries are admitted per
 * receiver (origin_queue.c).  Memory is bounded by the limit on active
 * deliveries, a multiple of it for deliveries waiting to retry, and the
 * size of one popped batch.
 *
 * On any orderly exit, a before_shmem_exit callback saves every unfinished
 * event (held here or still queued) with event_store.c, and the next worker
 * queues them again under the same webhook-ids.  Only a process killed
 * outright loses events; a new worker then counts what its predecessor
 * held as dropped (coco_queue_lose_unfinished).
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include <limits.h>

#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "lib/pairingheap.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "delivery_log.h"
#include "http_client.h"
#include "origin_queue.h"

#define POP_BUFFER_INITIAL	(1024 * 1024)
#define MAX_LOG_BATCH		1000
#define PRUNE_BATCH			1000
#define PRUNE_INTERVAL_MS	60000
#define GATHER_MS			1	/* see the main loop */

/*
 * Deliveries waiting to retry do not count against
 * cocohooks.max_concurrent_deliveries, so they never hold back fresh events;
 * this many times that limit may wait, beyond which a failure is final
 * (and logged with its payload, so it can be redelivered).
 */
#define RETRY_BACKLOG_FACTOR 16

typedef struct WorkerEvent
{
	dlist_node	node;
	CocoEventHeader *msg;		/* owned copy of the queued message */
	char	   *document_id;	/* for the log: text of the key, or NULL */
	int			remaining;		/* deliveries not yet finished and logged */
	char		event_id[COCO_MAX_EVENT_ID_LEN + 1];
} WorkerEvent;

typedef struct Delivery
{
	WorkerEvent *ev;
	const CocoHookSpec *spec;	/* inside ev->msg */
	CocoOrigin *origin;			/* the receiver, for admission */
	dlist_node	wait_node;		/* in origin's queue while waiting */
	bool		sent;			/* holds a slot of origin */
	dlist_node	live_node;		/* in live while unfinished */
	pairingheap_node retry_node;	/* in retries while waiting to retry */
	bool		waiting_retry;
	bool		done;			/* finished, only its log row is pending */
	TimestampTz retry_at;
	struct curl_slist *headers;
	char		webhook_id[96];
	int			attempts;
} Delivery;

static dlist_head events = DLIST_STATIC_INIT(events);
static pairingheap *retries = NULL;	/* deliveries waiting to retry, soonest first */
static dlist_head live = DLIST_STATIC_INIT(live);	/* every unfinished delivery */
static int	active = 0;			/* unfinished, not waiting to retry */
static int	retry_waiting = 0;	/* waiting to retry */

/* events read back from the store that did not fit in the queue yet */
static StringInfoData store_backlog;
static Size store_backlog_off = 0;

static TimestampTz next_prune = 0;
static CocoHttp *http = NULL;
static MemoryContext worker_cxt = NULL;

static CocoLogRow log_rows[MAX_LOG_BATCH];
static Delivery *log_deliveries[MAX_LOG_BATCH];
static int	nlog = 0;

void
coco_worker_register(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cocohooks");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cocohooks_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cocohooks worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cocohooks worker");
	RegisterBackgroundWorker(&worker);
}

static void
forget_worker(int code, Datum arg)
{
	coco_queue_set_worker(-1);
}

/* The document id as plain text for the log: the JSON string unquoted. */
static char *
document_id_text(const CocoEventHeader *msg)
{
	const char *json = coco_event_document_id(msg);
	int			len = msg->document_id_len;
	StringInfoData buf;

	if (len < 2 || json[0] != '"')
		return NULL;
	initStringInfo(&buf);
	for (int i = 1; i < len - 1; i++)
	{
		if (json[i] == '\\' && i + 1 < len - 1)
		{
			i++;
			switch (json[i])
			{
				case 'n':
					appendStringInfoChar(&buf, '\n');
					break;
				case 't':
					appendStringInfoChar(&buf, '\t');
					break;
				case 'r':
					appendStringInfoChar(&buf, '\r');
					break;
				case 'b':
					appendStringInfoChar(&buf, '\b');
					break;
				case 'f':
					appendStringInfoChar(&buf, '\f');
					break;
				case 'u':
					/* escape_json only writes \u00XX for control characters */
					if (i + 4 < len)
					{
						char		hex[3] = {json[i + 3], json[i + 4], '\0'};

						appendStringInfoChar(&buf, (char) strtol(hex, NULL, 16));
						i += 4;
					}
					break;
				default:
					appendStringInfoChar(&buf, json[i]);
			}
		}
		else
			appendStringInfoChar(&buf, json[i]);
	}
	return buf.data;
}

static void
finish_delivery(Delivery *d)
{
	if (d->headers)
		pfree(d->headers);
	d->ev->remaining--;
	dlist_delete(&d->live_node);
	pfree(d);
	active--;
}

static void flush_log(void);
static void send_delivery(Delivery *d);

static int
retry_compare(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	const Delivery *da = pairingheap_const_container(Delivery, retry_node, a);
	const Delivery *db = pairingheap_const_container(Delivery, retry_node, b);

	/* the heap keeps its greatest element first: the soonest is greatest */
	if (da->retry_at < db->retry_at)
		return 1;
	if (da->retry_at > db->retry_at)
		return -1;
	return 0;
}

/*
 * Milliseconds before retry number `attempt` (1 for the first retry): about
 * 1 s doubling each time, with jitter so that the retries of many events do
 * not arrive together, capped by cocohooks.retry_max_backoff.  A
 * Retry-After from the receiver is honoured up to the same cap.
 */
static long
retry_delay_ms(int attempt, long retry_after_s)
{
	double		base = 1000.0 * (double) (1L << Min(attempt - 1, 20));
	double		delay = base * (0.75 + 0.5 * pg_prng_double(&pg_global_prng_state));

	if (retry_after_s > 0)
		delay = Max(delay, (double) retry_after_s * 1000.0);
	return (long) Min(delay, (double) cocohooks_retry_max_backoff);
}

/* Deliveries due for retry go back through their origin's admission. */
static void
start_due_retries(void)
{
	TimestampTz now = GetCurrentTimestamp();

	while (!pairingheap_is_empty(retries))
	{
		Delivery   *d = pairingheap_container(Delivery, retry_node,
											  pairingheap_first(retries));

		if (d->retry_at > now)
			break;
		(void) pairingheap_remove_first(retries);
		d->waiting_retry = false;
		retry_waiting--;
		active++;
		d->attempts++;
		coco_queue_count_deliveries(0, 0, 1);
		if (coco_origin_admit(d->origin, &d->wait_node))
			send_delivery(d);
	}
}

/* Milliseconds until the next retry is due, -1 if none is waiting. */
static long
next_retry_ms(void)
{
	Delivery   *d;
	long		ms;

	if (pairingheap_is_empty(retries))
		return -1;
	d = pairingheap_container(Delivery, retry_node, pairingheap_first(retries));
	ms = (long) ((d->retry_at - GetCurrentTimestamp() + 999) / 1000);
	return Max(ms, 0);
}

static void
delivery_done(void *arg, const CocoHttpResult *r)
{
	Delivery   *d = (Delivery *) arg;
	const CocoEventHeader *msg = d->ev->msg;
	bool		success = (r->error == NULL && r->status >= 200 && r->status < 300);
	char	   *error = NULL;

	if (d->sent)
	{
		dlist_node *next = coco_origin_release(d->origin);

		d->sent = false;
		if (next)
			send_delivery(dlist_container(Delivery, wait_node, next));
	}

	if (d->headers)
	{
		pfree(d->headers);
		d->headers = NULL;
	}

	if (!success)
	{
		bool		retry = d->attempts <= d->spec->max_retries;
		long		delay_ms = retry ? retry_delay_ms(d->attempts, r->retry_after_s) : 0;
		char		next[64] = "";

		if (retry && retry_waiting >= cocohooks_max_concurrent_deliveries * RETRY_BACKLOG_FACTOR)
		{
			retry = false;
			snprintf(next, sizeof(next), ", not retried: too many retries waiting");
		}
		else if (retry)
			snprintf(next, sizeof(next), ", retrying in %ld ms", delay_ms);

		error = r->error ? pstrdup(r->error) :
			psprintf("receiver answered with HTTP status %ld", r->status);
		ereport(LOG,
				(errmsg("cocohooks could not deliver %s event of collection \"%.*s\" to hook %lld: %s",
						coco_event_names[msg->event],
						(int) msg->collection_len, coco_event_collection(msg),
						(long long) d->spec->hook_id, error),
				 errdetail("Attempt %d of %d%s. URL: %.*s, webhook-id: %s, document_id: %.*s.",
						   d->attempts, d->spec->max_retries + 1,
						   next,
						   (int) d->spec->url_len, coco_spec_url(d->spec),
						   d->webhook_id,
						   (int) msg->document_id_len, coco_event_document_id(msg))));
		if (retry)
		{
			/* waits in worker memory, holding no place in the shared queue */
			pfree(error);
			d->retry_at = GetCurrentTimestamp() + (TimestampTz) delay_ms * 1000;
			d->waiting_retry = true;
			active--;
			retry_waiting++;
			pairingheap_add(retries, &d->retry_node);
			return;
		}
	}
	coco_queue_count_deliveries(success ? 1 : 0, success ? 0 : 1, 0);

	if (cocohooks_log_deliveries == COCO_LOG_ALL ||
		(!success && cocohooks_log_deliveries == COCO_LOG_FAILURES))
	{
		CocoLogRow *row;

		/* we are outside libcurl and any transaction: safe to write now */
		if (nlog == MAX_LOG_BATCH)
			flush_log();
		row = &log_rows[nlog];

		row->hook_id = d->spec->hook_id;
		row->event = coco_event_names[msg->event];
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
		/* kept for redeliver(): failures always, everything when all is logged */
		row->payload = coco_event_body(msg);
		row->payload_len = msg->body_len;
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

/* Writes pending log rows, then lets their deliveries count as finished. */
static void
flush_log(void)
{
	if (nlog == 0)
		return;
	coco_log_write(log_rows, nlog);
	for (int i = 0; i < nlog; i++)
	{
		if (log_rows[i].error)
			pfree((char *) log_rows[i].error);
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
		finished = ev->msg->seq;
		dlist_delete(&ev->node);
		pfree(ev->msg);
		if (ev->document_id)
			pfree(ev->document_id);
		pfree(ev);
	}
	if (finished > 0)
		coco_queue_finish_upto(finished);
}

/*
 * Sends a delivery that holds a slot of its origin.  If libcurl refuses
 * the transfer, the delivery fails at once (which frees the slot for the
 * next one).
 */
static void
send_delivery(Delivery *d)
{
	const CocoEventHeader *msg = d->ev->msg;
	char	   *url = pnstrdup(coco_spec_url(d->spec), d->spec->url_len);

	d->sent = true;
	d->headers = coco_request_headers(msg, d->spec, d->webhook_id);
	if (!coco_http_post(http, url, d->headers, coco_event_body(msg),
						msg->body_len, d->spec->timeout_ms, d))
	{
		CocoHttpResult r = {0};

		r.error = "could not start the HTTP request";

		delivery_done(d, &r);
	}
	pfree(url);
}

static void
start_event(const CocoEventHeader *queued)
{
	WorkerEvent *ev = palloc(sizeof(WorkerEvent));
	const char *p;

	ev->msg = palloc(queued->total_len);
	memcpy(ev->msg, queued, queued->total_len);
	ev->document_id = document_id_text(ev->msg);
	ev->remaining = ev->msg->nhooks;
	if (ev->msg->event_id_len > 0)
		snprintf(ev->event_id, sizeof(ev->event_id), "%.*s",
				 (int) ev->msg->event_id_len, coco_event_id(ev->msg));
	else
		snprintf(ev->event_id, sizeof(ev->event_id), "msg_%llx_%llu",
				 (unsigned long long) coco_queue_epoch(),
				 (unsigned long long) ev->msg->seq);
	dlist_push_tail(&events, &ev->node);

	p = coco_event_hooks(ev->msg);
	for (int i = 0; i < ev->msg->nhooks; i++)
	{
		const CocoHookSpec *spec = (const CocoHookSpec *) p;
		Delivery   *d = palloc0(sizeof(Delivery));

		p += spec->spec_len;
		d->ev = ev;
		d->spec = spec;
		d->attempts = ev->msg->attempts + 1;
		snprintf(d->webhook_id, sizeof(d->webhook_id), "%s_%lld",
				 ev->event_id, (long long) spec->hook_id);
		d->origin = coco_origin_for_url(coco_spec_url(spec), spec->url_len);
		dlist_push_tail(&live, &d->live_node);
		active++;
		if (coco_origin_admit(d->origin, &d->wait_node))
			send_delivery(d);
	}
}

/*
 * before_shmem_exit callback: saves every unfinished event, held here or
 * still in the shared queue, so that the next worker delivers it (see
 * event_store.c).  An attempt in flight is not counted as made.  Runs on
 * any orderly exit; must not raise an error.
 */
static void
save_unfinished(int code, Datum arg)
{
	MemoryContext old = MemoryContextSwitchTo(worker_cxt);
	volatile uint64 n = 0;

	PG_TRY();
	{
		StringInfoData buf;
		dlist_iter	iter;
		char	   *popbuf = palloc(POP_BUFFER_INITIAL);
		Size		popbufsize = POP_BUFFER_INITIAL;

		initStringInfo(&buf);
		dlist_foreach(iter, &live)
		{
			Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

			if (d->done)
				continue;
			coco_message_append_carried(&buf, d->ev->msg,
										(const char *) d->spec, d->spec->spec_len, 1,
										d->ev->event_id,
										d->waiting_retry ? d->attempts : d->attempts - 1);
			n++;
		}
		for (;;)
		{
			int			npopped;
			Size		needed = 0;
			Size		len = coco_queue_pop(popbuf, popbufsize, INT_MAX, &npopped, &needed);

			if (len == 0 && needed == 0)
				break;
			if (len == 0)
			{
				popbuf = repalloc(popbuf, needed);
				popbufsize = needed;
				continue;
			}
			for (Size off = 0; off < len;)
			{
				const CocoEventHeader *msg = (const CocoEventHeader *) (popbuf + off);
				char		event_id[COCO_MAX_EVENT_ID_LEN + 1];

				if (msg->event_id_len > 0)
					snprintf(event_id, sizeof(event_id), "%.*s",
							 (int) msg->event_id_len, coco_event_id(msg));
				else
					snprintf(event_id, sizeof(event_id), "msg_%llx_%llu",
							 (unsigned long long) coco_queue_epoch(),
							 (unsigned long long) msg->seq);
				coco_message_append_carried(&buf, msg, coco_event_hooks(msg),
											msg->hooks_len, msg->nhooks,
											event_id, msg->attempts);
				n++;
				off += msg->total_len;
			}
		}
		if (store_backlog.data && store_backlog_off < (Size) store_backlog.len)
		{
			appendBinaryStringInfo(&buf, store_backlog.data + store_backlog_off,
								   store_backlog.len - store_backlog_off);
			/* count the carried-over messages too */
			for (Size off = store_backlog_off; off < (Size) store_backlog.len;
				 off += ((CocoEventHeader *) (store_backlog.data + off))->total_len)
				n++;
		}

		if (n == 0)
			coco_store_remove();
		else if (coco_store_save(buf.data, buf.len, n))
		{
			coco_queue_hand_off_popped();
			ereport(LOG,
					(errmsg("cocohooks worker saved %llu undelivered events for the next worker",
							(unsigned long long) n)));
		}
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}

/*
 * Queues the events a previous worker saved, as far as the queue has room;
 * the rest wait in store_backlog for later calls.  The store is removed
 * once all are queued (if we die before, they are queued again: at least
 * once).
 */
static void
requeue_saved_events(void)
{
	while (store_backlog.data && store_backlog_off < (Size) store_backlog.len)
	{
		const CocoEventHeader *msg =
		(const CocoEventHeader *) (store_backlog.data + store_backlog_off);

		if (coco_queue_push((const char *) msg, msg->total_len) == 0)
			return;
		store_backlog_off += msg->total_len;
	}
	if (store_backlog.data)
	{
		pfree(store_backlog.data);
		store_backlog.data = NULL;
		store_backlog_off = 0;
		coco_store_remove();
	}
	coco_queue_store_requeued();
}

static void
load_saved_events(void)
{
	uint64		n;

	initStringInfo(&store_backlog);
	n = coco_store_load(&store_backlog);
	if (n == 0)
	{
		pfree(store_backlog.data);
		store_backlog.data = NULL;
		coco_store_remove();
		coco_queue_store_requeued();
		return;
	}
	ereport(LOG,
			(errmsg("cocohooks worker queues again %llu undelivered events saved by the previous worker",
					(unsigned long long) n)));
	requeue_saved_events();
}

/* Deletes delivery log rows past cocohooks.log_retention, a batch at a time. */
static void
prune_log(void)
{
	int			deleted;

	if (next_prune == 0 || GetCurrentTimestamp() < next_prune)
		return;
	if (cocohooks_log_retention <= 0)
	{
		next_prune = GetCurrentTimestamp() + (TimestampTz) PRUNE_INTERVAL_MS * 1000;
		return;
	}
	deleted = coco_log_prune(cocohooks_log_retention, PRUNE_BATCH);
	/* a full batch means more may be due: go on at the next turn */
	next_prune = GetCurrentTimestamp() +
		(deleted >= PRUNE_BATCH ? 0 : (TimestampTz) PRUNE_INTERVAL_MS * 1000);
}

/* Pops and starts events while there is room; returns true if it took any. */
static bool
take_events(char **buf, Size *bufsize)
{
	bool		took = false;

	while (active < cocohooks_max_concurrent_deliveries &&
		   nlog < MAX_LOG_BATCH / 2)
	{
		int			n;
		Size		needed = 0;
		/* an event is at least one delivery: never pop past the limit */
		Size		len = coco_queue_pop(*buf, *bufsize,
										 cocohooks_max_concurrent_deliveries - active,
										 &n, &needed);
		Size		off = 0;

		if (len == 0)
		{
			if (needed == 0)
				break;
			/* a message larger than the buffer: make room and pop again */
			*buf = repalloc(*buf, needed);
			*bufsize = needed;
			continue;
		}
		while (off < len)
		{
			const CocoEventHeader *msg = (const CocoEventHeader *) (*buf + off);

			start_event(msg);
			off += msg->total_len;
		}
		took = true;
	}
	return took;
}

void
cocohooks_worker_main(Datum main_arg)
{
	WaitEventSet *wes;
	char	   *popbuf;
	Size		popbufsize = POP_BUFFER_INITIAL;
	uint64		lost;
	WaitEventSet *gather_wes;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(cocohooks_database, NULL, 0);
	pgstat_report_appname("cocohooks worker");

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks worker",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(worker_cxt);

	coco_queue_set_worker(coco_my_procno());
	before_shmem_exit(forget_worker, (Datum) 0);
	before_shmem_exit(save_unfinished, (Datum) 0);

	lost = coco_queue_lose_unfinished();
	if (lost > 0)
		ereport(LOG,
				(errmsg("cocohooks worker restarted: %llu events held by the previous worker were lost",
						(unsigned long long) lost),
				 errdetail("They are counted in cocohooks.stats as dropped.")));

	retries = pairingheap_allocate(retry_compare, NULL);
	http = coco_http_create(delivery_done);
	coco_http_set_limits(http, cocohooks_max_host_connections);
	coco_origin_set_limit(cocohooks_max_host_connections);
	popbuf = palloc(popbufsize);

	wes = coco_create_wait_event_set(3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, coco_http_wait_fd(http), NULL, NULL);
	/* the wait while gathering: only a timeout, or postmaster death */
	gather_wes = coco_create_wait_event_set(1);
	AddWaitEventToSet(gather_wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);

	ereport(LOG,
			(errmsg("cocohooks worker started for database \"%s\"", cocohooks_database)));
	load_saved_events();
	next_prune = GetCurrentTimestamp();

	for (;;)
	{
		WaitEvent	occurred[3];
		long		timeout;
		long		retry_ms;
		bool		took;

		ResetLatch(MyLatch);
		if (ProcDiePending)
		{
			/* finished deliveries get their log rows before we go */
			HOLD_INTERRUPTS();
			flush_log();
			RESUME_INTERRUPTS();
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			coco_http_set_limits(http, cocohooks_max_host_connections);
			coco_origin_set_limit(cocohooks_max_host_connections);
			/* log_retention may have changed: apply it now */
			next_prune = GetCurrentTimestamp();
		}

		requeue_saved_events();
		took = take_events(&popbuf, &popbufsize);
		start_due_retries();
		coco_http_drive(http);
		flush_log();
		release_finished_events();
		prune_log();
		coco_queue_set_in_flight(active + retry_waiting);

		/*
		 * Sleep until libcurl or a retry needs us, or a backend sets our
		 * latch; but with room for more deliveries and events waiting
		 * (which set the latch while we had no room), look again at once.
		 *
		 * While events keep coming (this round took some), gather them
		 * instead: look at the queue and at libcurl's sockets again after
		 * GATHER_MS, waiting on neither.  A backend's SetLatch then costs it
		 * no system call and us no wake-up per commit, responses are read a
		 * tick at a time, and events go out together, at the price of at
		 * most GATHER_MS of latency.  A latch set meanwhile stays set, so
		 * the first wait on the full set ends at once.
		 */
		timeout = coco_http_timeout_ms(http);
		retry_ms = next_retry_ms();
		if (retry_ms >= 0 && (timeout < 0 || retry_ms < timeout))
			timeout = retry_ms;
		if (next_prune > 0)
		{
			long		prune_ms = (long) ((next_prune - GetCurrentTimestamp()) / 1000);

			if (timeout < 0 || prune_ms < timeout)
				timeout = Max(prune_ms, 0);
		}
		if (active < cocohooks_max_concurrent_deliveries && !coco_queue_is_empty())
			timeout = 0;
		if (took && (timeout < 0 || timeout > GATHER_MS))
			timeout = GATHER_MS;
		(void) WaitEventSetWait(took ? gather_wes : wes, timeout,
								occurred, lengthof(occurred),
								PG_WAIT_EXTENSION);
	}
}
