/*-------------------------------------------------------------------------
 *
 * event_queue.c
 *	  The shared-memory queues that carry event messages from the backends
 *	  to their database's background worker, and the counters shown by
 *	  cocohooks.stats.
 *
 * Each database with the extension has a slot (up to
 * cocohooks.max_databases): its queue, counters and the state the launcher
 * (launcher.c) acts on.  A process works with the slot of the database it
 * is connected to (`queue` below, found again if the slot was given to
 * another database meanwhile).
 *
 * The queues share one pool of cocohooks.queue_size bytes, cut into
 * chunks.  A queue is a ring in logical bytes: head and tail count bytes
 * written and read since the slot was set up, (head - tail) is the space in
 * use, and logical chunk k of it lives in the pool chunk its chunk table
 * names at k modulo the table's size.  A push takes chunks from the pool as
 * it needs them, a pop gives back those it has read past.  One database may
 * use the whole pool, except that it never takes the chunks other
 * databases with a slot need to reach their reserve (an equal share of the
 * pool per cocohooks.max_databases): a busy database cannot starve
 * another of queue space.
 *
 * Messages are whole multiples of 8 bytes and may span chunks.  Any number
 * of backends push under the queue's exclusive lock; the worker pops
 * batches under the same lock and copies them out, so no pointer into the
 * pool is held once the lock is released.
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
	/* protected by the registry lock (and changed only with lock held too) */
	Oid			dboid;			/* InvalidOid: a free slot */
	uint32		generation;		/* bumped each time the slot is set up */
	int			state;			/* COCO_SLOT_* */
	int			worker_pid;		/* its worker, 0 if none */
	/* protected by lock */
	uint64		head;			/* bytes ever written */
	uint64		tail;			/* bytes ever read */
	uint64		alloc_end;		/* logical bytes covered by its chunks */
	uint64		free_from;		/* logical start of its first chunk */
	uint32		nheld;			/* pool chunks it holds (pool_mutex too) */
	uint32	   *chunk_ids;		/* chunk table: pool_chunks entries */
	uint64		last_seq;		/* sequence number of the newest message */
	uint64		popped_seq;		/* sequence number of the newest popped */
	TimestampTz epoch;			/* when the slot was set up */
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
} CocoQueue;

typedef struct CocoShared
{
	LWLock	   *registry_lock;	/* slot set-up and states */
	slock_t		pool_mutex;		/* the free chunks and every nheld */
	uint32		pool_chunks;
	uint32		chunk_size;
	uint32		nfree;
	uint32	   *free_chunks;	/* stack of free chunk ids */
	char	   *pool;
	int			nslots;
	TimestampTz last_epoch;
	pg_atomic_uint32 launcher_pgprocno;
	pg_atomic_uint64 no_slot_dropped;	/* events of a database without a slot */
	CocoQueue	slots[FLEXIBLE_ARRAY_MEMBER];
} CocoShared;

#define INVALID_WORKER_PROCNO PG_UINT32_MAX

/* the most a process maps ahead at once, and the biggest chunk */
#define RING_SEGMENT	((uint64) 1024 * 1024)

static CocoShared *shared = NULL;
static CocoQueue *queue = NULL;		/* this database's slot, if it has one */
static uint32 queue_generation = 0;

PG_FUNCTION_INFO_V1(cocohooks_stats);
PG_FUNCTION_INFO_V1(cocohooks_wait_for_deliveries);

static uint64
pool_bytes(void)
{
	return TYPEALIGN(8, (uint64) cocohooks_queue_size * 1024);
}

/*
 * Chunks of 1 kB to 1 MB: at least four per database slot, so each has a
 * reserve; 1 MB is also the unit a process maps ahead of writing.
 */
static uint32
chunk_bytes(void)
{
	uint64		size = pool_bytes() / ((uint64) 4 * cocohooks_max_databases);

	size = Max(size, 1024);
	size = Min(size, RING_SEGMENT);
	return (uint32) TYPEALIGN_DOWN(8, size);
}

static uint32
pool_chunk_count(void)
{
	return (uint32) Max(pool_bytes() / chunk_bytes(), 1);
}

Size
coco_queue_shmem_size(void)
{
	Size		size = add_size(offsetof(CocoShared, slots),
								mul_size(sizeof(CocoQueue), cocohooks_max_databases));
	uint32		nchunks = pool_chunk_count();

	/* the free stack, a chunk table per slot, the pool */
	size = add_size(size, mul_size(sizeof(uint32), nchunks));
	size = add_size(size, mul_size(mul_size(sizeof(uint32), nchunks), cocohooks_max_databases));
	size = MAXALIGN(size);
	size = add_size(size, mul_size(nchunks, chunk_bytes()));
	return add_size(size, PG_CACHE_LINE_SIZE);
}

void
coco_queue_shmem_request(void)
{
	RequestAddinShmemSpace(coco_queue_shmem_size());
	RequestNamedLWLockTranche("cocohooks", cocohooks_max_databases + 1);
}

void
coco_queue_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("cocohooks event queues", coco_queue_shmem_size(),
							 &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("cocohooks");
		uint32		nchunks = pool_chunk_count();
		char	   *p;

		memset(shared, 0, offsetof(CocoShared, slots));
		shared->registry_lock = &locks[0].lock;
		SpinLockInit(&shared->pool_mutex);
		shared->pool_chunks = nchunks;
		shared->chunk_size = chunk_bytes();
		shared->nslots = cocohooks_max_databases;
		pg_atomic_init_u32(&shared->launcher_pgprocno, INVALID_WORKER_PROCNO);
		pg_atomic_init_u64(&shared->no_slot_dropped, 0);
		p = (char *) &shared->slots[shared->nslots];
		shared->free_chunks = (uint32 *) p;
		p += sizeof(uint32) * nchunks;
		for (uint32 c = 0; c < nchunks; c++)
			shared->free_chunks[c] = nchunks - 1 - c;
		shared->nfree = nchunks;
		for (int i = 0; i < shared->nslots; i++)
		{
			CocoQueue  *q = &shared->slots[i];

			memset(q, 0, sizeof(CocoQueue));
			q->lock = &locks[i + 1].lock;
			q->dboid = InvalidOid;
			q->state = COCO_SLOT_FREE;
			q->chunk_ids = (uint32 *) p;
			p += sizeof(uint32) * nchunks;
			ConditionVariableInit(&q->finished_cv);
		}
		/* the pool on a cache line: chunks are multiples of 8 bytes */
		shared->pool = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE, p);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Sets up slot q for database dboid (the registry lock held exclusively):
 * an empty queue, counters at zero.
 */
static void
setup_slot(CocoQueue *q, Oid dboid, int state)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	q->dboid = dboid;
	q->generation++;
	q->state = state;
	q->worker_pid = 0;
	q->head = q->tail = q->alloc_end = q->free_from = 0;
	q->last_seq = q->popped_seq = 0;
	/* distinct per slot and set-up: it names memory-mode events */
	q->epoch = Max(now, shared->last_epoch + 1);
	shared->last_epoch = q->epoch;
	pg_atomic_init_u32(&q->worker_pgprocno, INVALID_WORKER_PROCNO);
	pg_atomic_init_u64(&q->finished_seq, 0);
	pg_atomic_init_u64(&q->queued, 0);
	pg_atomic_init_u64(&q->delivered, 0);
	pg_atomic_init_u64(&q->failed, 0);
	pg_atomic_init_u64(&q->retried, 0);
	pg_atomic_init_u64(&q->dropped, 0);
	pg_atomic_init_u32(&q->in_flight, 0);
	/* a previous worker of this database saved events: they count as queued */
	pg_atomic_init_u32(&q->store_pending, coco_store_exists(dboid) ? 1 : 0);
	pg_atomic_init_u32(&q->store_generation, 0);
	pg_atomic_init_u32(&q->wal_active, 0);
	pg_atomic_init_u64(&q->wal_done, 0);
	pg_atomic_init_u64(&q->wal_restart, 0);
	pg_atomic_init_u64(&q->wal_only_lsn, 0);
	pg_atomic_init_u32(&q->commit_prepared_running, 0);
	pg_atomic_init_u32(&q->hooks_generation, 0);
	pg_atomic_init_u32(&q->ext_check_request, 0);
	pg_atomic_init_u32(&q->ext_check_done, 0);
	LWLockRelease(q->lock);
}

/* Gives back every chunk of a slot being freed (its lock held). */
static void
release_all_chunks(CocoQueue *q)
{
	SpinLockAcquire(&shared->pool_mutex);
	for (uint64 pos = q->free_from; pos < q->alloc_end; pos += shared->chunk_size)
		shared->free_chunks[shared->nfree++] =
			q->chunk_ids[(pos / shared->chunk_size) % shared->pool_chunks];
	q->nheld = 0;
	SpinLockRelease(&shared->pool_mutex);
	q->free_from = q->alloc_end = q->head = q->tail;
}

/* The slot of database dboid, or NULL; the registry lock held. */
static CocoQueue *
find_slot(Oid dboid)
{
	for (int i = 0; i < shared->nslots; i++)
		if (shared->slots[i].dboid == dboid)
			return &shared->slots[i];
	return NULL;
}

/*
 * Makes sure database dboid has a slot; a new one gets the given state.
 * Returns it, or NULL if all cocohooks.max_databases slots are taken.
 */
CocoQueue *
coco_slot_ensure(Oid dboid, int state, bool *created)
{
	CocoQueue  *q;

	*created = false;
	LWLockAcquire(shared->registry_lock, LW_SHARED);
	q = find_slot(dboid);
	LWLockRelease(shared->registry_lock);
	if (q)
		return q;
	LWLockAcquire(shared->registry_lock, LW_EXCLUSIVE);
	q = find_slot(dboid);
	if (q == NULL)
	{
		q = find_slot(InvalidOid);
		if (q)
		{
			setup_slot(q, dboid, state);
			*created = true;
		}
	}
	LWLockRelease(shared->registry_lock);
	return q;
}

/*
 * Frees database dboid's slot, if it has one (in state only_if, unless
 * that is negative); its queued events go.
 */
void
coco_slot_free(Oid dboid, int only_if)
{
	CocoQueue  *q;

	LWLockAcquire(shared->registry_lock, LW_EXCLUSIVE);
	q = find_slot(dboid);
	if (q && (only_if < 0 || q->state == only_if))
	{
		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		release_all_chunks(q);
		q->dboid = InvalidOid;
		q->state = COCO_SLOT_FREE;
		q->worker_pid = 0;
		q->generation++;
		LWLockRelease(q->lock);
		ConditionVariableBroadcast(&q->finished_cv);
	}
	LWLockRelease(shared->registry_lock);
}

/*
 * Sets the state of database dboid's slot, if it has one, and returns the
 * state it had (COCO_SLOT_FREE if none).  With only_if >= 0, only a slot in
 * that state changes.
 */
int
coco_slot_set_state(Oid dboid, int state, int only_if)
{
	CocoQueue  *q;
	int			old = COCO_SLOT_FREE;

	LWLockAcquire(shared->registry_lock, LW_EXCLUSIVE);
	q = find_slot(dboid);
	if (q)
	{
		old = q->state;
		if (only_if < 0 || old == only_if)
			q->state = state;
	}
	LWLockRelease(shared->registry_lock);
	return old;
}

/*
 * A copy of every slot in use, for the launcher: up to max entries of
 * (database, state, worker pid).  Returns how many.
 */
int
coco_slot_list(CocoSlotInfo *out, int max)
{
	int			n = 0;

	LWLockAcquire(shared->registry_lock, LW_SHARED);
	for (int i = 0; i < shared->nslots && n < max; i++)
	{
		CocoQueue  *q = &shared->slots[i];

		if (!OidIsValid(q->dboid))
			continue;
		out[n].dboid = q->dboid;
		out[n].state = q->state;
		out[n].worker_pid = q->worker_pid;
		n++;
	}
	LWLockRelease(shared->registry_lock);
	return n;
}

int
coco_slot_count(void)
{
	return shared ? shared->nslots : 0;
}

/* The launcher's latch, set when a slot wants a worker. */
void
coco_launcher_set(int pgprocno)
{
	pg_atomic_write_u32(&shared->launcher_pgprocno,
						pgprocno < 0 ? INVALID_WORKER_PROCNO : (uint32) pgprocno);
}

void
coco_launcher_wake(void)
{
	uint32		procno = pg_atomic_read_u32(&shared->launcher_pgprocno);

	if (procno != INVALID_WORKER_PROCNO)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * This database's slot, found once per process and again if it was freed
 * or given to another database since.  With create, a database without one
 * gets one (its worker is then started by the launcher).  NULL if it has
 * none.
 */
static CocoQueue *
attach(bool create)
{
	static bool said_unserved = false;

	if (shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (queue && queue->dboid == MyDatabaseId && queue->generation == queue_generation)
		return queue;
	queue = NULL;
	if (create)
	{
		bool		created;
		CocoQueue  *q = coco_slot_ensure(MyDatabaseId, COCO_SLOT_WANTED, &created);

		if (created)
			coco_launcher_wake();
		if (q)
		{
			queue = q;
			queue_generation = q->generation;
		}
		else if (!said_unserved)
		{
			/* a database copied from a template with the extension, say */
			said_unserved = true;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("cocohooks does not deliver the events of this database"),
					 errdetail("%d databases are served, as many as \"%s\" allows; the events of this one are not sent.",
							   shared->nslots, "cocohooks.max_databases"),
					 errhint("Raise \"%s\" and restart the server, or drop the extension in a database that does not use it.",
							 "cocohooks.max_databases")));
		}
	}
	else
	{
		LWLockAcquire(shared->registry_lock, LW_SHARED);
		queue = find_slot(MyDatabaseId);
		if (queue)
			queue_generation = queue->generation;
		LWLockRelease(shared->registry_lock);
	}
	return queue;
}

/* Whether this database has a slot now. */
bool
coco_queue_has_slot(void)
{
	return attach(false) != NULL;
}

bool
coco_queue_available(void)
{
	return shared != NULL;
}

/* Time the queue was set up; with a sequence number it names an event. */
TimestampTz
coco_queue_epoch(void)
{
	return attach(true) ? queue->epoch : 0;
}

/*
 * A process's first write to a page of shared memory takes a page fault,
 * and a big commit writes thousands of pool pages.  Mapping a chunk at a
 * time with one madvise(MADV_POPULATE_WRITE) costs far less than a fault
 * per page.  mapped_chunks remembers, for this process, which chunks are
 * mapped; a kernel without MADV_POPULATE_WRITE simply faults as before.
 */
static uint64 *mapped_chunks = NULL;

static void
map_chunk(uint32 chunk)
{
#ifdef MADV_POPULATE_WRITE
	uintptr_t	page = (uintptr_t) sysconf(_SC_PAGESIZE);
	uintptr_t	start;
	uintptr_t	end;

	if (mapped_chunks == NULL)
		mapped_chunks = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(uint64) * ((shared->pool_chunks + 63) / 64));
	if (mapped_chunks[chunk / 64] & ((uint64) 1 << (chunk % 64)))
		return;
	mapped_chunks[chunk / 64] |= (uint64) 1 << (chunk % 64);

	/* whole pages: the pool lies inside one page-aligned mapping */
	start = (uintptr_t) shared->pool + (uintptr_t) chunk * shared->chunk_size;
	end = start + shared->chunk_size;
	start &= ~(page - 1);
	end = (end + page - 1) & ~(page - 1);
	(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
}

/* The pool address of logical byte pos of queue q. */
static inline char *
chunk_addr(CocoQueue *q, uint64 pos)
{
	uint32		chunk = q->chunk_ids[(pos / shared->chunk_size) % shared->pool_chunks];

	return shared->pool + (Size) chunk * shared->chunk_size + pos % shared->chunk_size;
}

/*
 * Maps the chunks this queue already has for [pos, pos + len), ahead of a
 * write; read without the lock, so only a guess.
 */
static void
map_range(uint64 pos, Size len)
{
	uint64		end = Min(pos + len, *(volatile uint64 *) &queue->alloc_end);

	for (uint64 p = pos - pos % shared->chunk_size; p < end; p += shared->chunk_size)
		map_chunk(queue->chunk_ids[(p / shared->chunk_size) % shared->pool_chunks]);
}

/*
 * Chunks q may still take from the pool: the free ones, less those the
 * other slots in use lack to reach their reserve.  pool_mutex held.
 */
static uint32
chunks_available(CocoQueue *q)
{
	uint32		reserve = Max(shared->pool_chunks / shared->nslots, 1);
	uint32		owed = 0;

	for (int i = 0; i < shared->nslots; i++)
	{
		CocoQueue  *o = &shared->slots[i];

		if (o != q && OidIsValid(o->dboid) && o->nheld < reserve)
			owed += reserve - o->nheld;
	}
	return shared->nfree > owed ? shared->nfree - owed : 0;
}

/*
 * Makes q's chunks cover logical bytes up to end, taking chunks from the
 * pool; false if it may not have that many.  q's lock held.
 */
static bool
cover_until(CocoQueue *q, uint64 end)
{
	uint32		need;
	bool		ok;

	if (end <= q->alloc_end)
		return true;
	need = (uint32) ((end - q->alloc_end + shared->chunk_size - 1) / shared->chunk_size);
	if (q->nheld + need > shared->pool_chunks)
		return false;
	SpinLockAcquire(&shared->pool_mutex);
	ok = chunks_available(q) >= need;
	if (ok)
	{
		for (uint32 i = 0; i < need; i++)
		{
			q->chunk_ids[(q->alloc_end / shared->chunk_size) % shared->pool_chunks] =
				shared->free_chunks[--shared->nfree];
			q->alloc_end += shared->chunk_size;
		}
		q->nheld += need;
	}
	SpinLockRelease(&shared->pool_mutex);
	return ok;
}

/* Gives back the chunks q's tail has passed.  q's lock held. */
static void
release_read_chunks(CocoQueue *q)
{
	if (q->free_from + shared->chunk_size > q->tail)
		return;
	SpinLockAcquire(&shared->pool_mutex);
	while (q->free_from + shared->chunk_size <= q->tail)
	{
		shared->free_chunks[shared->nfree++] =
			q->chunk_ids[(q->free_from / shared->chunk_size) % shared->pool_chunks];
		q->free_from += shared->chunk_size;
		q->nheld--;
	}
	SpinLockRelease(&shared->pool_mutex);
}

static void
ring_write(uint64 pos, const char *src, Size len)
{
	while (len > 0)
	{
		Size		n = Min(len, shared->chunk_size - pos % shared->chunk_size);

		map_chunk(queue->chunk_ids[(pos / shared->chunk_size) % shared->pool_chunks]);
		memcpy(chunk_addr(queue, pos), src, n);
		pos += n;
		src += n;
		len -= n;
	}
}

static void
ring_read(uint64 pos, char *dst, Size len)
{
	while (len > 0)
	{
		Size		n = Min(len, shared->chunk_size - pos % shared->chunk_size);

		memcpy(dst, chunk_addr(queue, pos), n);
		pos += n;
		dst += n;
		len -= n;
	}
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
	TimestampTz now;
	Size		done = 0;
	int			pushed = 0;

	if (!attach(true))
		return 0;
	now = GetCurrentTimestamp();

	/*
	 * Fault in the pages this push will likely write before taking the lock;
	 * head, read without the lock, is only a guess of where they are.
	 */
	map_range(*(volatile uint64 *) &queue->head, len);

	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	/* the slot was freed (DROP EXTENSION, DROP DATABASE) meanwhile */
	if (queue->dboid != MyDatabaseId)
		len = 0;
	while (done < len)
	{
		CocoEventHeader hdr;

		memcpy(&hdr, messages + done, sizeof(hdr));
		if (!cover_until(queue, queue->head + hdr.total_len))
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
	if (n == 0 || shared == NULL)
		return;
	if (attach(false))
		pg_atomic_fetch_add_u64(&queue->dropped, n);
	else
		pg_atomic_fetch_add_u64(&shared->no_slot_dropped, n);
}

void
coco_queue_wake_worker(void)
{
	uint32		procno;

	if (!attach(false))
		return;
	procno = pg_atomic_read_u32(&queue->worker_pgprocno);

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
	uint64		seen;

	if (!attach(true))
		return;
	seen = pg_atomic_read_u64(&queue->wal_only_lsn);
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
static CocoQueue *commit_prepared_queue = NULL;

void
coco_queue_commit_prepared_begin(void)
{
	/* a database without a slot has no worker to tell (it holds at start) */
	commit_prepared_queue = attach(false);
	if (commit_prepared_queue)
		pg_atomic_fetch_add_u32(&commit_prepared_queue->commit_prepared_running, 1);
}

void
coco_queue_commit_prepared_end(uint64 lsn)
{
	if (commit_prepared_queue == NULL)
		return;
	if (lsn != 0)
		coco_queue_note_wal_only(lsn);
	pg_atomic_fetch_sub_u32(&commit_prepared_queue->commit_prepared_running, 1);
	commit_prepared_queue = NULL;
}

/*
 * For the worker, after popping: the end of the newest WAL-only event,
 * or false if a COMMIT PREPARED is running (ask again later).
 */
bool
coco_queue_wal_only(uint64 *lsn)
{
	*lsn = 0;
	if (!attach(false))
		return true;
	pg_memory_barrier();
	if (pg_atomic_read_u32(&queue->commit_prepared_running) != 0)
		return false;
	*lsn = pg_atomic_read_u64(&queue->wal_only_lsn);
	return true;
}

void
coco_queue_set_worker(int pgprocno)
{
	if (!attach(false))
		return;
	LWLockAcquire(shared->registry_lock, LW_EXCLUSIVE);
	if (queue->dboid == MyDatabaseId)
		queue->worker_pid = pgprocno < 0 ? 0 : MyProcPid;
	LWLockRelease(shared->registry_lock);
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
	*nmessages = 0;
	if (!attach(false))
		return 0;

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
	release_read_chunks(queue);
	LWLockRelease(queue->lock);

	*nmessages = n;
	return copied;
}

/* True when no message waits in the queue. */
bool
coco_queue_is_empty(void)
{
	bool		empty;

	if (!attach(false))
		return true;
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

	if (!attach(false))
		return 0;
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

	if (!attach(false))
		return;
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
	if (!attach(false))
		return;
	if (pg_atomic_read_u32(&queue->store_pending) == 0)
		return;
	pg_atomic_write_u32(&queue->store_pending, 0);
	ConditionVariableBroadcast(&queue->finished_cv);
}

/* Every event up to seq is finished and its log row committed. */
void
coco_queue_finish_upto(uint64 seq)
{
	if (!attach(false))
		return;
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
 * dropped) and waits, up to wait_ms, until it has.  Returns whether a
 * worker answered.  Never raises an error: runs after commit.
 */
bool
coco_queue_request_extension_check(int wait_ms)
{
	uint32		request;
	bool		answered;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	if (!attach(false))
		return false;
	request = pg_atomic_add_fetch_u32(&queue->ext_check_request, 1);
	/* a worker about to start answers too, once it has set up */
	coco_queue_wake_worker();
	coco_launcher_wake();
	ConditionVariablePrepareToSleep(&queue->finished_cv);
	while (!(answered = (int32) (pg_atomic_read_u32(&queue->ext_check_done) - request) >= 0) &&
		   sleep_until(deadline))
		;
	ConditionVariableCancelSleep();
	return answered;
}

/* For the worker: true if a check was asked for since the one it answered. */
bool
coco_queue_extension_check_requested(uint32 *request)
{
	*request = 0;
	if (!attach(false))
		return false;
	*request = pg_atomic_read_u32(&queue->ext_check_request);
	return *request != pg_atomic_read_u32(&queue->ext_check_done);
}

void
coco_queue_extension_checked(uint32 request)
{
	if (!attach(false))
		return;
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
	if (!attach(false))
		return;
	if (n >= 0)
		pg_atomic_fetch_add_u64(&queue->queued, (uint64) n);
	else
		pg_atomic_fetch_sub_u64(&queue->queued, (uint64) -n);
}

void
coco_queue_set_wal_restart(uint64 lsn)
{
	if (!attach(false))
		return;
	pg_atomic_write_u64(&queue->wal_restart, lsn);
}

void
coco_queue_set_wal_done(uint64 lsn)
{
	if (!attach(false))
		return;
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
	if (!attach(false))
		return;
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
	if (!attach(false))
		return;
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

	if (tupdesc->natts < 8 || tupdesc->natts > 10)
		elog(ERROR, "unexpected row type of cocohooks.queue_stats()");
	if (!attach(false))
	{
		/* no worker has served this database since the server started */
		for (int i = 0; i < 10; i++)
			values[i] = Int64GetDatum(0);
		values[5] = Int32GetDatum(0);
		values[7] = Int64GetDatum((int64) shared->pool_chunks * shared->chunk_size);
		values[8] = CStringGetTextDatum(coco_wal_mode() ? "wal" : "memory");
		tupdesc = BlessTupleDesc(tupdesc);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
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
	/* the pool all databases share */
	values[7] = Int64GetDatum((int64) shared->pool_chunks * shared->chunk_size);
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
	/* a database without a slot gets one, and so a worker */
	if (!attach(true))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cocohooks serves no more databases"),
				 errdetail("Each of the %d databases \"%s\" allows has its worker.",
						   shared->nslots, "cocohooks.max_databases"),
				 errhint("Raise \"%s\" and restart the server.", "cocohooks.max_databases")));
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
	if (attach(false))
		pg_atomic_fetch_add_u32(&queue->hooks_generation, 1);
}

uint32
coco_queue_hooks_generation(void)
{
	return attach(false) ? pg_atomic_read_u32(&queue->hooks_generation) : 0;
}
