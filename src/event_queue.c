/*-------------------------------------------------------------------------
 *
 * event_queue.c
 *	  The shared-memory ring that carries event messages from the backends
 *	  to the background worker, and the counters shown by cocohooks.stats.
 *
 * The ring is a byte buffer of cocohooks.queue_size.  head and tail count
 * bytes written and read since server start; (head - tail) is the space in
 * use.  Messages are whole multiples of 8 bytes and may wrap at the end of
 * the buffer.  Any number of backends push under the exclusive lock; the
 * worker pops batches under the same lock and copies them out, so no
 * pointer into the ring is held once the lock is released.
 *
 * Every message gets the next sequence number as it enters the ring.  The
 * worker reports, through finished_seq, the highest number up to which all
 * events are finished and logged; wait_for_deliveries() sleeps on a
 * condition variable until that passes the number it saw at its start.
 *
 * A full ring never blocks a writer: push stops at the first message that
 * does not fit, and the caller counts what was left as dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "wal_source.h"

#include <sys/mman.h>

typedef struct CocoQueue
{
	LWLock	   *lock;
	/* protected by lock */
	uint64		head;			/* bytes ever written */
	uint64		tail;			/* bytes ever read */
	uint64		last_seq;		/* sequence number of the newest message */
	uint64		popped_seq;		/* sequence number of the newest popped */
	/* set once at startup */
	uint64		size;			/* capacity of data[] in bytes */
	TimestampTz epoch;			/* when this memory was set up */
	/* lock-free */
	pg_atomic_uint32 worker_pgprocno;	/* INVALID_PGPROCNO when none */
	pg_atomic_uint64 finished_seq;
	ConditionVariable finished_cv;
	pg_atomic_uint64 queued;
	pg_atomic_uint64 delivered;
	pg_atomic_uint64 failed;
	pg_atomic_uint64 retried;
	pg_atomic_uint64 dropped;
	pg_atomic_uint32 in_flight;
	/* events saved to the event store and not yet queued again */
	pg_atomic_uint32 store_pending;
	pg_atomic_uint32 store_generation;	/* bumped at every save */
	/* the worker reads events from the WAL: everything before wal_done is finished */
	pg_atomic_uint32 wal_active;
	pg_atomic_uint64 wal_done;
	pg_atomic_uint64 wal_restart;	/* the oldest WAL position kept for events */
	/*
	 * Events the queue does not carry (see coco_queue_note_wal_only): the
	 * end of the newest one's WAL record, and COMMIT PREPAREDs running.
	 */
	pg_atomic_uint64 wal_only_lsn;
	pg_atomic_uint32 commit_prepared_running;
	/* the extension was created or dropped: the worker looks and answers */
	pg_atomic_uint32 hooks_generation;	/* bumped when a hooks change commits */
	pg_atomic_uint32 ext_check_request;
	pg_atomic_uint32 ext_check_done;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CocoQueue;

#define INVALID_WORKER_PROCNO PG_UINT32_MAX

static CocoQueue *queue = NULL;

PG_FUNCTION_INFO_V1(cocohooks_stats);
PG_FUNCTION_INFO_V1(cocohooks_wait_for_deliveries);

static uint64
ring_size(void)
{
	return TYPEALIGN(8, (uint64) cocohooks_queue_size * 1024);
}

Size
coco_queue_shmem_size(void)
{
	return add_size(offsetof(CocoQueue, data), ring_size());
}

void
coco_queue_shmem_request(void)
{
	RequestAddinShmemSpace(coco_queue_shmem_size());
	RequestNamedLWLockTranche("cocohooks", 1);
}

void
coco_queue_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	queue = ShmemInitStruct("cocohooks event queue", coco_queue_shmem_size(),
							&found);
	if (!found)
	{
		memset(queue, 0, offsetof(CocoQueue, data));
		queue->lock = &(GetNamedLWLockTranche("cocohooks"))->lock;
		queue->size = ring_size();
		queue->epoch = GetCurrentTimestamp();
		pg_atomic_init_u32(&queue->worker_pgprocno, INVALID_WORKER_PROCNO);
		pg_atomic_init_u64(&queue->finished_seq, 0);
		ConditionVariableInit(&queue->finished_cv);
		pg_atomic_init_u64(&queue->queued, 0);
		pg_atomic_init_u64(&queue->delivered, 0);
		pg_atomic_init_u64(&queue->failed, 0);
		pg_atomic_init_u64(&queue->retried, 0);
		pg_atomic_init_u64(&queue->dropped, 0);
		pg_atomic_init_u32(&queue->in_flight, 0);
		/* a previous server saved events: they count as queued */
		pg_atomic_init_u32(&queue->store_pending, coco_store_exists() ? 1 : 0);
		pg_atomic_init_u32(&queue->store_generation, 0);
		pg_atomic_init_u32(&queue->wal_active, 0);
		pg_atomic_init_u64(&queue->wal_done, 0);
		pg_atomic_init_u64(&queue->wal_restart, 0);
		pg_atomic_init_u64(&queue->wal_only_lsn, 0);
		pg_atomic_init_u32(&queue->commit_prepared_running, 0);
		pg_atomic_init_u32(&queue->hooks_generation, 0);
		pg_atomic_init_u32(&queue->ext_check_request, 0);
		pg_atomic_init_u32(&queue->ext_check_done, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
coco_queue_available(void)
{
	return queue != NULL;
}

/* Time the queue was set up; with a sequence number it names an event. */
TimestampTz
coco_queue_epoch(void)
{
	return queue->epoch;
}

/*
 * A process's first write to a page of shared memory takes a page fault,
 * and a big commit writes thousands of ring pages.  Mapping the ring in
 * segments, each with one madvise(MADV_POPULATE_WRITE), costs far less than
 * a fault per page.  mapped_segments remembers, for this process, which
 * segments are mapped; a kernel without MADV_POPULATE_WRITE simply faults
 * as before.
 */
#define RING_SEGMENT	((uint64) 1024 * 1024)

static uint64 *mapped_segments = NULL;

static void
map_ring_segment(uint64 segment)
{
#ifdef MADV_POPULATE_WRITE
	uint64		nsegments = (queue->size + RING_SEGMENT - 1) / RING_SEGMENT;
	uintptr_t	page = (uintptr_t) sysconf(_SC_PAGESIZE);
	uintptr_t	start;
	uintptr_t	end;

	if (mapped_segments == NULL)
		mapped_segments = MemoryContextAllocZero(TopMemoryContext,
												 sizeof(uint64) * ((nsegments + 63) / 64));
	if (mapped_segments[segment / 64] & ((uint64) 1 << (segment % 64)))
		return;
	mapped_segments[segment / 64] |= (uint64) 1 << (segment % 64);

	/* whole pages: the ring lies inside one page-aligned mapping */
	start = (uintptr_t) queue->data + segment * RING_SEGMENT;
	end = (uintptr_t) queue->data + Min((segment + 1) * RING_SEGMENT, queue->size);
	start &= ~(page - 1);
	end = (end + page - 1) & ~(page - 1);
	(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
}

/* Maps the ring bytes [pos, pos + len) into this process ahead of a write. */
static void
map_ring_range(uint64 pos, Size len)
{
	uint64		nsegments = (queue->size + RING_SEGMENT - 1) / RING_SEGMENT;
	uint64		first = (pos % queue->size) / RING_SEGMENT;
	uint64		count = Min(nsegments, len / RING_SEGMENT + 2);

	for (uint64 i = 0; i < count; i++)
		map_ring_segment((first + i) % nsegments);
}

static void
ring_write(uint64 pos, const char *src, Size len)
{
	Size		off = pos % queue->size;
	Size		first = Min(len, queue->size - off);

	memcpy(queue->data + off, src, first);
	if (first < len)
		memcpy(queue->data, src + first, len - first);
}

static void
ring_read(uint64 pos, char *dst, Size len)
{
	Size		off = pos % queue->size;
	Size		first = Min(len, queue->size - off);

	memcpy(dst, queue->data + off, first);
	if (first < len)
		memcpy(dst + first, queue->data, len - first);
}

/*
 * Pushes the consecutive messages in len bytes.  Returns how many
 * entered the queue; they are the first ones, since order is kept.  The
 * caller counts the rest as dropped.  Never blocks beyond the lock and never
 * raises an error, so it is safe in a commit callback.
 */
int
coco_queue_push(const char *messages, Size len)
{
	TimestampTz now = GetCurrentTimestamp();
	Size		done = 0;
	int			pushed = 0;

	/*
	 * Fault in the pages this push will likely write before taking the lock;
	 * head, read without the lock, is only a guess of where they are.
	 */
	map_ring_range(*(volatile uint64 *) &queue->head, len);

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	while (done < len)
	{
		CocoEventHeader hdr;

		memcpy(&hdr, messages + done, sizeof(hdr));
		if (queue->size - (queue->head - queue->tail) < hdr.total_len)
			break;
		hdr.seq = ++queue->last_seq;
		if (hdr.queued_at == 0)
			hdr.queued_at = now;
		ring_write(queue->head, (const char *) &hdr, sizeof(hdr));
		ring_write(queue->head + sizeof(hdr), messages + done + sizeof(hdr),
				   hdr.total_len - sizeof(hdr));
		queue->head += hdr.total_len;
		done += hdr.total_len;
		pushed++;
	}
	LWLockRelease(queue->lock);

	if (pushed > 0)
	{
		pg_atomic_fetch_add_u64(&queue->queued, pushed);
		coco_queue_wake_worker();
	}
	return pushed;
}

void
coco_queue_count_dropped(uint64 n)
{
	if (queue && n > 0)
		pg_atomic_fetch_add_u64(&queue->dropped, n);
}

void
coco_queue_wake_worker(void)
{
	uint32		procno = pg_atomic_read_u32(&queue->worker_pgprocno);

	/*
	 * A stale number (the worker just exited) only sets some other
	 * process's latch, which every latch user tolerates.
	 */
	if (procno != INVALID_WORKER_PROCNO)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Events whose WAL records end at or before lsn are not all in the queue
 * (it was full, or a big transaction left them to the WAL): the worker's
 * WAL reader delivers them.  Called before the writer releases its row
 * locks, so a later event of the same document, queued after this, makes
 * the worker wait for the WAL reader before sending it (document order).
 */
void
coco_queue_note_wal_only(uint64 lsn)
{
	uint64		seen = pg_atomic_read_u64(&queue->wal_only_lsn);

	while (seen < lsn &&
		   !pg_atomic_compare_exchange_u64(&queue->wal_only_lsn, &seen, lsn))
		;
	coco_queue_wake_worker();
}

/*
 * A COMMIT PREPARED releases the prepared transaction's locks before the
 * statement returns, and its events are only in the WAL: while one runs,
 * the worker cannot tell how far to wait (see coco_queue_wal_only).
 */
void
coco_queue_commit_prepared_begin(void)
{
	pg_atomic_fetch_add_u32(&queue->commit_prepared_running, 1);
}

void
coco_queue_commit_prepared_end(uint64 lsn)
{
	if (lsn != 0)
		coco_queue_note_wal_only(lsn);
	pg_atomic_fetch_sub_u32(&queue->commit_prepared_running, 1);
}

/*
 * For the worker, after popping: the end of the newest WAL-only event,
 * or false if a COMMIT PREPARED is running (ask again later).
 */
bool
coco_queue_wal_only(uint64 *lsn)
{
	pg_memory_barrier();
	if (pg_atomic_read_u32(&queue->commit_prepared_running) != 0)
		return false;
	*lsn = pg_atomic_read_u64(&queue->wal_only_lsn);
	return true;
}

void
coco_queue_set_worker(int pgprocno)
{
	pg_atomic_write_u32(&queue->worker_pgprocno,
						pgprocno < 0 ? INVALID_WORKER_PROCNO : (uint32) pgprocno);
}

/*
 * Pop whole messages into dst, up to dst_size bytes and max_messages.  Returns the bytes
 * copied; when the first message alone does not fit, returns 0 and sets
 * *needed to its size.
 */
Size
coco_queue_pop(char *dst, Size dst_size, int max_messages, int *nmessages,
			   Size *needed)
{
	Size		copied = 0;
	int			n = 0;

	*needed = 0;

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	while (queue->tail < queue->head && n < max_messages)
	{
		CocoEventHeader hdr;

		ring_read(queue->tail, (char *) &hdr, sizeof(hdr));
		if (copied + hdr.total_len > dst_size)
		{
			if (copied == 0)
				*needed = hdr.total_len;
			break;
		}
		ring_read(queue->tail, dst + copied, hdr.total_len);
		queue->tail += hdr.total_len;
		queue->popped_seq = hdr.seq;
		copied += hdr.total_len;
		n++;
	}
	LWLockRelease(queue->lock);

	*nmessages = n;
	return copied;
}

/* True when no message waits in the queue. */
bool
coco_queue_is_empty(void)
{
	bool		empty;

	LWLockAcquire(queue->lock, LW_SHARED);
	empty = (queue->head == queue->tail);
	LWLockRelease(queue->lock);
	return empty;
}

/*
 * At worker start: events a previous worker popped but did not finish are
 * gone with it.  Count them as dropped and let waiters past them.
 */
uint64
coco_queue_lose_unfinished(bool in_wal)
{
	uint64		popped;
	uint64		finished;

	LWLockAcquire(queue->lock, LW_SHARED);
	popped = queue->popped_seq;
	LWLockRelease(queue->lock);

	finished = pg_atomic_read_u64(&queue->finished_seq);
	if (popped <= finished)
		return 0;
	/* events in the WAL are read again from there: not lost */
	if (!in_wal)
		pg_atomic_fetch_add_u64(&queue->dropped, popped - finished);
	coco_queue_finish_upto(popped);
	return in_wal ? 0 : popped - finished;
}

/*
 * The worker saved every event it popped or left in the queue
 * (event_store.c).  Their sequence numbers are done with, but until the
 * next worker has queued them again (coco_queue_store_requeued) waiters
 * must not think them finished.
 */
void
coco_queue_hand_off_popped(void)
{
	uint64		popped;

	pg_atomic_write_u32(&queue->store_pending, 1);
	pg_atomic_fetch_add_u32(&queue->store_generation, 1);
	pg_write_barrier();
	LWLockAcquire(queue->lock, LW_SHARED);
	popped = queue->popped_seq;
	LWLockRelease(queue->lock);
	coco_queue_finish_upto(popped);
}

/* Every saved event is back in the queue (or there were none). */
void
coco_queue_store_requeued(void)
{
	if (pg_atomic_read_u32(&queue->store_pending) == 0)
		return;
	pg_atomic_write_u32(&queue->store_pending, 0);
	ConditionVariableBroadcast(&queue->finished_cv);
}

/* Every event up to seq is finished and its log row committed. */
void
coco_queue_finish_upto(uint64 seq)
{
	if (seq <= pg_atomic_read_u64(&queue->finished_seq))
		return;
	pg_atomic_write_u64(&queue->finished_seq, seq);
	ConditionVariableBroadcast(&queue->finished_cv);
}

/*
 * The worker's WAL reader: every event whose WAL record ends at or before
 * lsn is finished (InvalidXLogRecPtr: the reader is not running).
 */
/*
 * One sleep on finished_cv (prepared by the caller), of at most 100 ms so
 * that a missed broadcast costs little; false once the deadline has passed.
 */
static bool
sleep_until(TimestampTz deadline)
{
	long		remaining_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

	if (remaining_ms <= 0)
		return false;
	(void) ConditionVariableTimedSleep(&queue->finished_cv, Min(remaining_ms, 100),
									   PG_WAIT_EXTENSION);
	return true;
}

/*
 * Asks the worker to look whether the extension exists (it was created or
 * dropped) and waits, up to wait_ms, until it has.  Never raises an error:
 * runs after commit.
 */
void
coco_queue_request_extension_check(int wait_ms)
{
	uint32		request = pg_atomic_add_fetch_u32(&queue->ext_check_request, 1);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	if (pg_atomic_read_u32(&queue->worker_pgprocno) == INVALID_WORKER_PROCNO)
		return;
	coco_queue_wake_worker();
	ConditionVariablePrepareToSleep(&queue->finished_cv);
	while ((int32) (pg_atomic_read_u32(&queue->ext_check_done) - request) < 0 &&
		   sleep_until(deadline))
		;
	ConditionVariableCancelSleep();
}

/* For the worker: true if a check was asked for since the one it answered. */
bool
coco_queue_extension_check_requested(uint32 *request)
{
	*request = pg_atomic_read_u32(&queue->ext_check_request);
	return *request != pg_atomic_read_u32(&queue->ext_check_done);
}

void
coco_queue_extension_checked(uint32 request)
{
	pg_atomic_write_u32(&queue->ext_check_done, request);
	ConditionVariableBroadcast(&queue->finished_cv);
}

/*
 * Events the WAL reader found that the queue had not carried (negative: a
 * queued copy of one of them came after all, and counted itself).
 */
void
coco_queue_count_queued(int64 n)
{
	if (n >= 0)
		pg_atomic_fetch_add_u64(&queue->queued, (uint64) n);
	else
		pg_atomic_fetch_sub_u64(&queue->queued, (uint64) -n);
}

void
coco_queue_set_wal_restart(uint64 lsn)
{
	pg_atomic_write_u64(&queue->wal_restart, lsn);
}

void
coco_queue_set_wal_done(uint64 lsn)
{
	pg_atomic_write_u32(&queue->wal_active, lsn != 0 ? 1 : 0);
	if (lsn == pg_atomic_read_u64(&queue->wal_done))
		return;
	pg_atomic_write_u64(&queue->wal_done, lsn);
	ConditionVariableBroadcast(&queue->finished_cv);
}

/*
 * wait_for_deliveries() while the worker reads events from the WAL: every
 * event written before the call, once in the WAL on disk, is read and
 * finished when the reader's done mark passes the call's WAL position
 * (target).  Events queued but not in the WAL (redeliver()) are waited for
 * by their place in the queue, as in memory mode.
 */
static XLogRecPtr
wal_wait_target(void)
{
	XLogRecPtr	target = GetXLogInsertRecPtr();

	/*
	 * The insert position of a new page or segment points past its header,
	 * where no record ends yet: wait for the end of the last record.
	 */
	if (XLogSegmentOffset(target, wal_segment_size) == SizeOfXLogLongPHD)
		target -= SizeOfXLogLongPHD;
	else if (target % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		target -= SizeOfXLogShortPHD;
	return target;
}

static bool
wait_for_wal_deliveries(XLogRecPtr target, TimestampTz deadline)
{
	bool		done = false;

	XLogFlush(target);
	coco_queue_wake_worker();
	ConditionVariablePrepareToSleep(&queue->finished_cv);
	for (;;)
	{
		if (pg_atomic_read_u64(&queue->wal_done) >= target)
		{
			done = true;
			break;
		}
		if (!sleep_until(deadline))
			break;
	}
	ConditionVariableCancelSleep();
	return done;
}

void
coco_queue_count_deliveries(uint64 delivered, uint64 failed, uint64 retried)
{
	if (delivered)
		pg_atomic_fetch_add_u64(&queue->delivered, delivered);
	if (failed)
		pg_atomic_fetch_add_u64(&queue->failed, failed);
	if (retried)
		pg_atomic_fetch_add_u64(&queue->retried, retried);
}

void
coco_queue_set_in_flight(int n)
{
	pg_atomic_write_u32(&queue->in_flight, (uint32) n);
}

Datum
cocohooks_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {0};
	uint64		head;
	uint64		tail;
	uint64		restart;

	coco_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	LWLockAcquire(queue->lock, LW_SHARED);
	head = queue->head;
	tail = queue->tail;
	LWLockRelease(queue->lock);

	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&queue->queued));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&queue->delivered));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&queue->failed));
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&queue->retried));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&queue->dropped));
	values[5] = Int32GetDatum((int32) pg_atomic_read_u32(&queue->in_flight));
	values[6] = Int64GetDatum((int64) (head - tail));
	values[7] = Int64GetDatum((int64) queue->size);
	/* 0.2.0's columns; a 0.1.0 schema (before ALTER EXTENSION UPDATE) has 8 */
	values[8] = CStringGetTextDatum(coco_wal_mode() ? "wal" : "memory");
	restart = pg_atomic_read_u32(&queue->wal_active) ?
		pg_atomic_read_u64(&queue->wal_restart) : 0;
	values[9] = Int64GetDatum(restart == 0 ? 0 :
							  (int64) Max(GetXLogInsertRecPtr(), restart) - (int64) restart);
	if (tupdesc->natts < 8 || tupdesc->natts > 10)
		elog(ERROR, "unexpected row type of cocohooks.queue_stats()");
	tupdesc = BlessTupleDesc(tupdesc);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * wait_for_deliveries(timeout interval): true once every event queued before
 * the call has finished, false if the timeout passes first.
 */
Datum
cocohooks_wait_for_deliveries(PG_FUNCTION_ARGS)
{
	Interval   *timeout;
	int64		timeout_us;
	TimestampTz deadline;
	uint64		target;
	uint32		generation;
	bool		requeue_seen = false;
	bool		done = false;
	XLogRecPtr	wal_target = InvalidXLogRecPtr;

	coco_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be null")));
	timeout = PG_GETARG_INTERVAL_P(0);
	timeout_us = timeout->time +
		((int64) timeout->day + (int64) timeout->month * DAYS_PER_MONTH) * USECS_PER_DAY;
	if (timeout_us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	deadline = GetCurrentTimestamp() + Min(timeout_us, (int64) 100 * 365 * USECS_PER_DAY);
	if (coco_wal_mode() && pg_atomic_read_u32(&queue->wal_active) != 0)
		wal_target = wal_wait_target();

	generation = pg_atomic_read_u32(&queue->store_generation);
	pg_read_barrier();
	LWLockAcquire(queue->lock, LW_SHARED);
	target = queue->last_seq;
	LWLockRelease(queue->lock);

	ConditionVariablePrepareToSleep(&queue->finished_cv);
	for (;;)
	{
		/*
		 * Saved events are back in the queue only once store_pending is
		 * clear, under new numbers: if a save happened since we looked, or
		 * one was pending, wait for those numbers too.
		 */
		if (pg_atomic_read_u32(&queue->store_pending) != 0)
			requeue_seen = true;
		else
		{
			uint32		now_generation = pg_atomic_read_u32(&queue->store_generation);

			if (now_generation != generation || requeue_seen)
			{
				generation = now_generation;
				requeue_seen = false;
				pg_read_barrier();
				LWLockAcquire(queue->lock, LW_SHARED);
				target = Max(target, queue->last_seq);
				LWLockRelease(queue->lock);
			}
			if (pg_atomic_read_u64(&queue->finished_seq) >= target)
			{
				done = true;
				break;
			}
		}
		if (!sleep_until(deadline))
			break;
	}
	ConditionVariableCancelSleep();

	if (done && !XLogRecPtrIsInvalid(wal_target))
		done = wait_for_wal_deliveries(wal_target, deadline);
	PG_RETURN_BOOL(done);
}

/*
 * A transaction that changed cocohooks.hooks committed: the worker reads
 * the hooks' signing secrets again before its next signed request.
 */
void
coco_queue_bump_hooks_generation(void)
{
	if (queue)
		pg_atomic_fetch_add_u32(&queue->hooks_generation, 1);
}

uint32
coco_queue_hooks_generation(void)
{
	return queue ? pg_atomic_read_u32(&queue->hooks_generation) : 0;
}
