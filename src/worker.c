/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker's loop: event sources feeding the delivery
 *	  engine.
 *
 * One worker serves each database with the extension; the launcher
 * (launcher.c) starts it, with the database's oid.  A worker that finds
 * no extension in its database, or sees it dropped, frees the database's
 * dbslot and exits.  Its loop:
 *
 *	wait (latch, postmaster death, HTTP sockets, libcurl's timer, the next
 *	retry or log pruning)
 *	-> reset latch -> CHECK_FOR_INTERRUPTS -> reload settings if asked
 *	-> if the extension was created or dropped, start or stop reading the
 *	   WAL (extension_watch.c)
 *	-> take events from the sources while the engine has room:
 *	   the events a previous worker saved (saved_events.c), the shared
 *	   queue, then (durability = wal) the WAL (wal_scan.c, wal_source.c),
 *	   parked deliveries that are due (parked_retries.c), and last the
 *	   rows of backfills (backfill_source.c)
 *	-> let the engine progress (delivery_engine.c): retries that are due,
 *	   libcurl, the batch of log rows, the report of finished events
 *	-> move the WAL source's restart point past what is finished
 *	-> now and then, delete log rows past their retention
 *	   (cocohooks.log_retention, cocohooks.log_retention_failed), and write
 *	   the server log's summary lines of failing hooks (failing_hooks.c)
 *	-> show what it waits on in pg_stat_activity (report_waiting).
 *
 * Each pass runs in a memory context reset at the next pass; what outlives
 * a pass lives in the worker's, the engine's or the WAL source's context.
 *
 * In memory mode, on any orderly exit, a before_shmem_exit callback saves
 * every unfinished event (held by the engine or still queued) with
 * saved_events.c, and the next worker starts them again under the same
 * webhook-ids; a process killed outright loses events, and a new worker
 * counts what its predecessor held as dropped (coco_marks_lose_unfinished).
 * In wal mode nothing is lost: the next worker reads again from the
 * replication slot's restart point.
 *
 * Runs in: the worker, one per database (and coco_worker_start in the
 * launcher).
 *
 * Invariants: the loop follows PostgreSQL's (WaitEventSet with
 * WL_EXIT_ON_PM_DEATH -> ResetLatch -> CHECK_FOR_INTERRUPTS -> reload);
 * no HTTP inside a transaction; the replication slot is taken before
 * anything is popped from the ring, so a worker that cannot start loses
 * nothing; events popped and not started stay in popbuf, in order, and
 * start before anything newer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "backfill_source.h"
#include "cocohooks.h"
#include "db_slots.h"
#include "delivery_engine.h"
#include "delivery_log.h"
#include "document_order.h"
#include "hook_pace.h"
#include "event_message.h"
#include "event_ring.h"
#include "event_store.h"
#include "extension_installed.h"
#include "failing_hooks.h"
#include "hook_stats.h"
#include "parked_retries.h"
#include "pg_compat.h"
#include "retry_queue.h"
#include "saved_events.h"
#include "settings_retirement.h"
#include "settings.h"
#include "wal_merge.h"
#include "wal_scan.h"
#include "wal_source.h"
#include "worker.h"
#include "worker_marks.h"

#define POP_BUFFER_INITIAL	(1024 * 1024)
#define PRUNE_BATCH			1000
#define PRUNE_INTERVAL_MS	60000
#define GATHER_MS			1	/* see the main loop */
#define PARKED_TAKE_BATCH	256 /* see take_parked() */
#define GATHER_BUSY_MS		1	/* see keeping_up() */
#define GATHER_BUSY_RATE	3	/* events per ms */
#define GATHER_HALF_LIFE_MS	20	/* weight of the rounds before: halved every 20 ms */
#define ACTIVITY_EVERY_MS	1000	/* see report_waiting() */

/* events popped from the queue; those from parked_off on wait to start */
static char *popbuf = NULL;
static Size popbufsize = POP_BUFFER_INITIAL;
static Size parked_off = 0;
static Size parked_len = 0;

static TimestampTz next_prune = 0;

/* events started, and ms gone by, over the last rounds (decaying sums) */
static double gather_events = 0;
static double gather_elapsed_ms = 0;
static TimestampTz gather_last_round = 0;
static MemoryContext worker_cxt = NULL;

/* what pg_stat_activity shows while we wait, and since when */
static char waiting_text[192] = "";
static TimestampTz waiting_text_at = 0;

/*
 * For the launcher: starts the worker of database dboid, which tells the
 * launcher when it stops.  False if no background worker slot is free.
 */
bool
coco_worker_start(Oid dboid, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does */
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cocohooks");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cocohooks_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cocohooks worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "cocohooks worker");
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/*
 * The extension is not (or no longer) installed here: the database's dbslot
 * goes, and so does this worker, saving nothing.
 */
static bool leaving = false;
static char *dbname = NULL;

static void
leave_database(int elevel, const char *why)
{
	ereport(elevel,
			(errmsg("cocohooks worker for database \"%s\" stops: %s", dbname, why)));
	leaving = true;
	coco_store_remove();
	coco_hook_stats_forget(MyDatabaseId);
	coco_dbslot_free(MyDatabaseId, -1);
	proc_exit(0);
}

static void
forget_worker(int code, Datum arg)
{
	coco_dbslot_set_worker(-1);
}

/*
 * before_shmem_exit callback: the WAL source keeps its place, and every
 * unfinished event not in the WAL is saved for the next worker
 * (saved_events.c), with the events popped and not started.  Runs on any
 * orderly exit; must not raise an error.
 */
static void
save_unfinished(int code, Datum arg)
{
	MemoryContext old;

	if (leaving)
		return;
	old = MemoryContextSwitchTo(worker_cxt);
	PG_TRY();
	{
		/* events in the WAL are read again from there: keep where */
		coco_wal_source_exit();
		coco_saved_events_save(popbuf + parked_off, parked_len - parked_off);
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
 * Deletes delivery log rows past their retention: successes past
 * cocohooks.log_retention, failures past cocohooks.log_retention_failed,
 * up to a batch of each per pass.
 */
static void
prune_log(void)
{
	int			deleted;

	if (next_prune == 0 || GetCurrentTimestamp() < next_prune)
		return;
	if (cocohooks_log_retention <= 0 && cocohooks_log_retention_failed <= 0)
	{
		next_prune = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PRUNE_INTERVAL_MS);
		return;
	}
	deleted = coco_log_prune(cocohooks_log_retention, cocohooks_log_retention_failed,
							 PRUNE_BATCH);
	/* a full batch means more may be due: go on at the next turn */
	next_prune = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 deleted >= PRUNE_BATCH ? 0 : PRUNE_INTERVAL_MS);
}

/*
 * The shared queue's events: in wal mode, each is in the WAL too, and the
 * WAL source follows it (wal_merge.c) and may give it up past
 * cocohooks.max_wal_retention.
 */
static void
queued_event_finished(uint64 lsn, void *source_arg)
{
	if (lsn != 0)
		coco_wal_merge_queued_finished(lsn);
}

static const CocoEventSource queue_source = {
	.name = "queue",
	.finished = queued_event_finished,
	.retention_cut = coco_wal_retention_cut,
};

/*
 * The shared queue as a source: pops events and starts them while the
 * engine has room; returns true if it took any.  Saved events go first.
 * Popped events may have to wait for the WAL reader (document order, see
 * coco_wal_merge_note_popped): they stay in popbuf, parked, and later
 * calls start them first.
 */
static bool
take_events(void)
{
	bool		took = false;

	if (coco_saved_events_waiting())
		return false;
	while (coco_engine_room() > 0)
	{
		if (parked_off == parked_len)
		{
			int			n;
			Size		needed = 0;

			if (coco_wal_merge_queue_paused())
				break;
			parked_off = parked_len = 0;
			parked_len = coco_ring_pop(popbuf, popbufsize, coco_engine_room(), &n, &needed);
			if (parked_len == 0)
			{
				if (needed == 0)
					break;
				/* a message larger than the buffer: make room and pop again */
				popbuf = repalloc(popbuf, needed);
				popbufsize = needed;
				continue;
			}
			coco_wal_merge_note_popped();
		}
		if (coco_wal_merge_holds_popped())
			break;
		while (parked_off < parked_len)
		{
			const CocoEventHeader *msg = (const CocoEventHeader *) (popbuf + parked_off);
			uint64		lsn = coco_message_wal_lsn(msg);

			if (coco_wal_merge_started_from_wal(lsn))
			{
				coco_marks_count_queued(-1);
				coco_engine_note_skipped(msg);
			}
			else
			{
				coco_wal_merge_note_queued(lsn);
				coco_engine_start_event(msg, lsn, &queue_source, NULL);
			}
			parked_off += msg->total_len;
		}
		took = true;
	}
	return took;
}

/*
 * Parked deliveries that are due (parked_retries.c), while the engine has
 * room; returns true if it took any.
 */
static bool
take_parked(void)
{
	int			room = coco_engine_room();
	StringInfoData buf;
	int64	   *ids;
	int			n;
	Size		off = 0;

	if (room <= 0 || !coco_parked_waiting())
		return false;

	/*
	 * While the engine is busy, wait for room for a batch: each look at the
	 * table costs about the same for one row as for hundreds.
	 */
	if (room < Min(cocohooks_max_concurrent_deliveries / 4, PARKED_TAKE_BATCH) &&
		coco_engine_in_flight() > 0)
	{
		coco_parked_defer();
		return false;
	}
	initStringInfo(&buf);
	ids = palloc(sizeof(int64) * room);
	n = coco_parked_take(&buf, ids, room);
	for (int i = 0; i < n; i++)
	{
		const CocoEventHeader *msg = (const CocoEventHeader *) (buf.data + off);

		coco_marks_count_deliveries(0, 0, msg->attempts > 0 ? 1 : 0);
		coco_engine_start_event(msg, 0, &coco_parked_source, (void *) (intptr_t) ids[i]);
		off += msg->total_len;
	}
	return n > 0;
}

/*
 * Whether we are keeping up with a steady stream of events: this round
 * started some ("started"), over the last rounds they came at
 * GATHER_BUSY_RATE per ms or more, and nothing is left behind.  Then we
 * gather GATHER_BUSY_MS (see the main loop), and events that came during
 * the round wait for the next look instead of being taken at once: each
 * wake-up of ours costs a context switch.  GATHER_BUSY_MS was 4 ms: at
 * 5,500 and 10,000 events/s (PostgreSQL 18, 10-row transactions) it made
 * the p99 from commit to receipt 11-15 and 15-16 ms against 5.3 and 5.6 ms
 * at 1 ms, and saved no CPU (at 10,000/s, 56 against 37 us of ours per
 * event).  Not while events wait for room or in the WAL, so a backlog
 * drains as fast as before, nor while deliveries wait in a document's
 * line: each of them goes only after its predecessor's response, read a
 * tick at a time, nor while deliveries wait for their hook's pace, some
 * for a response too.
 *
 * The rounds before weigh less by the time gone since, not by their number:
 * with 0.9 per round, a burst of batches (3,200 events a round) still
 * counted as 7 events per ms after a second and a half idle (the idle
 * rounds come every 200 ms or so), and a stream of 1 per ms that began then
 * was taken for a steady one (4 ms gathered, GATHER_BUSY_MS then, and
 * responses read a tick late) for its first 150 ms: 5 to 14 ms from commit
 * to receipt, section 4 of the benchmark's p99 at 9 ms after its batch and
 * backfill sections.  Halved every GATHER_HALF_LIFE_MS, what came before
 * an idle wait of 200 ms weighs a thousandth; while busy (rounds of 1 to
 * 4 ms) 0.97 to 0.87 a round, about the 0.9 before.
 *
 * quiet is set when events come slower than that and nothing is left
 * behind: then the gathering wait ends at the first answer too (the main
 * loop).  At 1,000 events/s a delivery otherwise waited a tick to be read
 * back: from commit to receipt p50 1.1 and p99 2.9-3.1 ms, against
 * 0.4-0.5 and 1.6-2.1 (wal mode) with it; the backends' commits still set
 * no latch of a sleeping worker while it gathers.
 */
static bool
keeping_up(uint64 started, bool *quiet)
{
	TimestampTz now = GetCurrentTimestamp();
	long		secs;
	int			usecs;
	double		ms;
	double		past;

	TimestampDifference(gather_last_round, now, &secs, &usecs);
	gather_last_round = now;
	ms = secs * 1000.0 + usecs / 1000.0;
	past = pow(0.5, ms / GATHER_HALF_LIFE_MS);
	gather_events = past * gather_events + started;
	gather_elapsed_ms = past * gather_elapsed_ms + ms;
	if (coco_saved_events_waiting() ||
		coco_engine_room() == 0 ||
		coco_order_waiting() > 0 ||
		coco_pace_waiting() > 0 ||
		coco_wal_source_behind())
	{
		*quiet = false;
		return false;
	}
	*quiet = gather_events < GATHER_BUSY_RATE * gather_elapsed_ms;
	return started > 0 && !*quiet;
}

/*
 * Before the worker waits: what it waits on, as its query in
 * pg_stat_activity, worked out at most every ACTIVITY_EVERY_MS.  The
 * statements of delivery_log.c and parked_retries.c show their own text
 * and leave none: then ours is shown again at the next wait.
 */
static void
report_waiting(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		cleared = MyBEEntry != NULL && MyBEEntry->st_activity_raw[0] == '\0';

	if (!pgstat_track_activities)
		return;
	if (TimestampDifferenceExceeds(waiting_text_at, now, ACTIVITY_EVERY_MS))
	{
		int			retrying = coco_retry_count();
		int			in_line = coco_order_waiting();
		int			paced = coco_pace_waiting();

		/* the engine's unfinished deliveries less those waiting: in flight */
		int			active = coco_engine_in_flight() - retrying - in_line - paced;
		long		next_ms = coco_retry_next_ms();
		char		next[32] = "";

		if (retrying > 0 && next_ms >= 0)
			snprintf(next, sizeof(next), " (next in %ld s)", (next_ms + 999) / 1000);
		if (active + retrying + in_line + paced == 0)
			snprintf(waiting_text, sizeof(waiting_text), "waiting for events%s",
					 coco_parked_available() && coco_parked_waiting() ?
					 " and parked retries" : "");
		else
			snprintf(waiting_text, sizeof(waiting_text),
					 "waiting: %d deliveries in flight, %d waiting to retry%s, %d for their pace, %d behind their document",
					 active, retrying, next, paced, in_line);
		waiting_text_at = now;
		cleared = true;
	}
	if (cleared)
		pgstat_report_activity(STATE_IDLE, waiting_text);
}

void
cocohooks_worker_main(Datum main_arg)
{
	WaitEventSet *wes;
	WaitEventSet *gather_wes;
	WaitEventSet *gather_answers_wes;
	MemoryContext loop_cxt;
	uint64		lost;
	uint32		wait_event;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* a database closed to connections (ALLOW_CONNECTIONS false) is served too */
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid,
											  BGWORKER_BYPASS_ALLOWCONN);
	pgstat_report_appname("cocohooks worker");

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks worker",
									   ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(worker_cxt, "cocohooks worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	StartTransactionCommand();
	dbname = MemoryContextStrdup(worker_cxt, get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	MemoryContextSwitchTo(worker_cxt);

	/* the launcher started us for our dbslot: gone (freed meanwhile), we go */
	if (!coco_dbslot_exists())
		proc_exit(0);
	if (!coco_extension_installed())
		leave_database(DEBUG1, "the extension is not installed in it");
	coco_store_adopt_legacy(dbname);

	/*
	 * The replication slot first: if none can be had (all in use), the
	 * worker fails here, before it takes anything from the queue or saves
	 * anything at exit, so the queued events wait for the next try.
	 */
	(void) coco_wal_source_start();

	coco_dbslot_set_worker(coco_my_procno());
	before_shmem_exit(forget_worker, (Datum) 0);
	before_shmem_exit(save_unfinished, (Datum) 0);

	lost = coco_marks_lose_unfinished(coco_wal_mode());
	if (lost > 0)
		ereport(LOG,
				(errmsg("cocohooks worker restarted: %llu events held by the previous worker were lost",
						(unsigned long long) lost),
				 errdetail("They are counted in cocohooks.stats as dropped.")));

	coco_engine_init();
	coco_backfill_init();
	popbuf = palloc(popbufsize);
	/* a CREATE EXTENSION that started us waits for this */
	{
		uint32		request;

		if (coco_marks_extension_check_requested(&request))
			coco_marks_extension_checked(request);
	}
	/* after that answer: until CREATE EXTENSION has ended, its tables are locked */
	coco_parked_init();
	coco_failing_init();
	coco_hook_stats_start();

	wes = coco_create_wait_event_set(3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, coco_engine_wait_fd(), NULL, NULL);
	/* the wait while gathering: only a timeout, or postmaster death */
	gather_wes = coco_create_wait_event_set(1);
	AddWaitEventToSet(gather_wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	/* the same, but answers end it: they free turns deliveries wait for */
	gather_answers_wes = coco_create_wait_event_set(2);
	AddWaitEventToSet(gather_answers_wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(gather_answers_wes, WL_SOCKET_READABLE, coco_engine_wait_fd(), NULL, NULL);

	/* the wait_event pg_stat_activity shows for the loop's wait */
	wait_event = coco_wait_event_new("CocohooksWorkerMain");
	ereport(LOG,
			(errmsg("cocohooks worker started for database \"%s\"", dbname)));
	coco_saved_events_load();
	next_prune = GetCurrentTimestamp();

	for (;;)
	{
		WaitEvent	occurred[3];
		long		timeout;
		long		wal_ms;
		long		parked_ms;
		long		retire_ms;
		long		report_ms;
		long		backfill_ms;
		bool		took;
		uint32		check_request;
		uint64		started_before;
		uint64		started_after;
		uint64		released;
		bool		busy;
		bool		quiet;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		ResetLatch(MyLatch);
		if (ProcDiePending)
		{
			/* finished deliveries get their log rows before we go */
			HOLD_INTERRUPTS();
			coco_engine_flush_log();
			RESUME_INTERRUPTS();
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			coco_engine_apply_settings();
			/* the retentions may have changed: apply them now */
			next_prune = GetCurrentTimestamp();
		}

		if (coco_marks_extension_check_requested(&check_request))
		{
			coco_wal_source_recheck();
			coco_marks_extension_checked(check_request);
			if (!coco_extension_installed())
				leave_database(LOG, "the extension was dropped");
		}
		coco_engine_event_counts(&started_before, &released);
		took = coco_saved_events_start();
		took |= take_events();
		coco_wal_scan();
		took |= coco_wal_source_take();
		/*
		 * Parked deliveries last, with the room the others left: they hold
		 * no WAL, while events not read yet keep theirs; with thousands due
		 * at each back-off (a receiver down for long), taking them first
		 * left no room to read new events, and the WAL grew.
		 */
		took |= take_parked();
		/* backfills last: live events go first */
		took |= coco_backfill_take();
		coco_engine_progress();
		/*
		 * Before the marks that wake wait_for_deliveries() (the engine sets
		 * it before its own): cocohooks.stats should show what it saw.
		 */
		coco_marks_set_in_flight(coco_engine_in_flight());
		coco_saved_events_note_finished();
		coco_wal_source_advance();
		coco_settings_retirement_step(parked_off < parked_len);
		prune_log();
		coco_hook_stats_maintain();
		coco_failing_report();

		/*
		 * Sleep until libcurl or a retry needs us, or a backend sets our
		 * latch; but with room for more deliveries and events waiting
		 * (which set the latch while we had no room), look again at once.
		 *
		 * While events keep coming (this round took some), gather them
		 * instead: look at the queue and at libcurl's sockets again after
		 * GATHER_MS, waiting on neither (GATHER_BUSY_MS while keeping up
		 * with a steady stream, and then events that came during the round
		 * wait too).  A backend's SetLatch then costs it no system call and
		 * us no wake-up per commit, responses are read a tick at a time, and
		 * events go out together, at the price of at most that much
		 * latency.  A latch set meanwhile stays set, so the first wait on
		 * the full set ends at once.  But while deliveries wait for a turn
		 * at their receiver, each answer frees one: the gathering wait ends
		 * at the first answer.  (Kept-alive HTTP/1.1 to nginx takes 13 us
		 * of ours a delivery: a tick of 1 ms per 32 answers made a backlog
		 * drain at 23,000 events/s with the worker a third busy.)  So does
		 * it for a quiet stream (see keeping_up()).
		 */
		coco_engine_send_posted();
		timeout = coco_engine_timeout_ms();
		wal_ms = coco_wal_source_timeout_ms();
		if (wal_ms >= 0 && (timeout < 0 || wal_ms < timeout))
			timeout = wal_ms;
		parked_ms = coco_parked_timeout_ms();
		if (parked_ms >= 0 && (timeout < 0 || parked_ms < timeout))
			timeout = parked_ms;
		retire_ms = coco_settings_retirement_timeout_ms();
		if (retire_ms >= 0 && (timeout < 0 || retire_ms < timeout))
			timeout = retire_ms;
		report_ms = coco_failing_report_timeout_ms();
		if (report_ms >= 0 && (timeout < 0 || report_ms < timeout))
			timeout = report_ms;
		backfill_ms = coco_backfill_timeout_ms();
		if (backfill_ms >= 0 && (timeout < 0 || backfill_ms < timeout))
			timeout = backfill_ms;
		if (next_prune > 0)
		{
			long		prune_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																   next_prune);

			if (timeout < 0 || prune_ms < timeout)
				timeout = prune_ms;
		}
		coco_engine_event_counts(&started_after, &released);
		busy = keeping_up(started_after - started_before, &quiet);
		if (coco_engine_room() > 0 &&
			(coco_saved_events_waiting() ||
			 (!busy && !coco_ring_is_empty() && !coco_wal_merge_holds_popped())))
			timeout = 0;
		if (took)
		{
			long		gather = busy ? GATHER_BUSY_MS : GATHER_MS;

			if (timeout < 0 || timeout > gather)
				timeout = gather;
		}
		if (!took)
			report_waiting();
		(void) WaitEventSetWait(!took ? wes :
								(quiet || coco_engine_waiting_for_turn() > 0) ? gather_answers_wes :
								gather_wes,
								timeout,
								occurred, lengthof(occurred),
								wait_event);
	}
}
