/*-------------------------------------------------------------------------
 *
 * db_slots.c
 *	  The per-database slots in shared memory, and the memory they share.
 *
 * Each database with the extension has a dbslot (up to
 * cocohooks.max_databases): its event ring (event_ring.c), the marks its
 * worker and backends signal each other with (worker_marks.c), its
 * counters (stats.c), and the state the launcher acts on.  This file sets
 * up that memory at server start and keeps the registry: which database
 * has which dbslot, in which state, with which worker.
 *
 * Runs in: the postmaster (shared-memory request and set-up), backends,
 * the launcher and the workers (the registry, the latches).
 *
 * Invariants:
 *	- a dbslot's dboid, state and worker_pid change only under the registry
 *	  lock, held exclusively, and dboid also under the dbslot's own lock, so
 *	  that either lock is enough to read it;
 *	- every set-up or release of a dbslot bumps its generation: a process
 *	  that found its database's dbslot earlier (coco_dbslot_mine) sees that
 *	  it is no longer its own;
 *	- the chunks of the pool are either on the free stack or held by
 *	  exactly one dbslot (pool_mutex); a freed dbslot gives all of its back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "dbslot_internal.h"
#include "event_store.h"
#include "settings.h"

CocoDbSlots *coco_dbslots = NULL;

/* this process's database's dbslot, if it has one, and its generation then */
static CocoDbSlot *mine = NULL;
static uint32 mine_generation = 0;

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

static Size
dbslot_shmem_size(void)
{
	Size		size = add_size(offsetof(CocoDbSlots, slots),
								mul_size(sizeof(CocoDbSlot), cocohooks_max_databases));
	uint32		nchunks = pool_chunk_count();

	/* the free stack, a chunk table per dbslot, the pool */
	size = add_size(size, mul_size(sizeof(uint32), nchunks));
	size = add_size(size, mul_size(mul_size(sizeof(uint32), nchunks), cocohooks_max_databases));
	size = MAXALIGN(size);
	size = add_size(size, mul_size(nchunks, chunk_bytes()));
	return add_size(size, PG_CACHE_LINE_SIZE);
}

void
coco_dbslot_shmem_request(void)
{
	RequestAddinShmemSpace(dbslot_shmem_size());
	RequestNamedLWLockTranche("cocohooks", cocohooks_max_databases + 1);
}

void
coco_dbslot_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	coco_dbslots = ShmemInitStruct("cocohooks event queues", dbslot_shmem_size(),
								   &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("cocohooks");
		uint32		nchunks = pool_chunk_count();
		char	   *p;

		memset(coco_dbslots, 0, offsetof(CocoDbSlots, slots));
		coco_dbslots->registry_lock = &locks[0].lock;
		SpinLockInit(&coco_dbslots->pool_mutex);
		coco_dbslots->pool_chunks = nchunks;
		coco_dbslots->chunk_size = chunk_bytes();
		coco_dbslots->nslots = cocohooks_max_databases;
		pg_atomic_init_u32(&coco_dbslots->launcher_pgprocno, INVALID_WORKER_PROCNO);
		pg_atomic_init_u64(&coco_dbslots->no_slot_dropped, 0);
		p = (char *) &coco_dbslots->slots[coco_dbslots->nslots];
		coco_dbslots->free_chunks = (uint32 *) p;
		p += sizeof(uint32) * nchunks;
		for (uint32 c = 0; c < nchunks; c++)
			coco_dbslots->free_chunks[c] = nchunks - 1 - c;
		coco_dbslots->nfree = nchunks;
		for (int i = 0; i < coco_dbslots->nslots; i++)
		{
			CocoDbSlot *q = &coco_dbslots->slots[i];

			memset(q, 0, sizeof(CocoDbSlot));
			q->lock = &locks[i + 1].lock;
			q->dboid = InvalidOid;
			q->state = COCO_DBSLOT_FREE;
			q->chunk_ids = (uint32 *) p;
			p += sizeof(uint32) * nchunks;
			ConditionVariableInit(&q->finished_cv);
		}
		/* the pool on a cache line: chunks are multiples of 8 bytes */
		coco_dbslots->pool = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE, p);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Sets up dbslot q for database dboid (the registry lock held exclusively):
 * an empty ring, counters at zero.
 */
static void
setup_slot(CocoDbSlot *q, Oid dboid, int state)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	q->dboid = dboid;
	q->generation++;
	q->state = state;
	q->worker_pid = 0;
	q->head = q->tail = q->alloc_end = q->free_from = 0;
	q->last_seq = q->popped_seq = 0;
	/* distinct per dbslot and set-up: it names memory-mode events */
	q->epoch = Max(now, coco_dbslots->last_epoch + 1);
	coco_dbslots->last_epoch = q->epoch;
	pg_atomic_init_u32(&q->worker_pgprocno, INVALID_WORKER_PROCNO);
	pg_atomic_init_u64(&q->finished_seq, 0);
	pg_atomic_init_u64(&q->queued, 0);
	pg_atomic_init_u64(&q->delivered, 0);
	pg_atomic_init_u64(&q->failed, 0);
	pg_atomic_init_u64(&q->retried, 0);
	pg_atomic_init_u64(&q->dropped, 0);
	pg_atomic_init_u32(&q->in_flight, 0);
	pg_atomic_init_u64(&q->parked, 0);
	/* a previous worker of this database saved events: they count as queued */
	pg_atomic_init_u32(&q->store_pending, coco_store_exists(dboid) ? 1 : 0);
	pg_atomic_init_u32(&q->store_generation, 0);
	pg_atomic_init_u32(&q->wal_active, 0);
	pg_atomic_init_u64(&q->wal_done, 0);
	pg_atomic_init_u64(&q->wal_restart, 0);
	pg_atomic_init_u64(&q->wal_only_lsn, 0);
	pg_atomic_init_u32(&q->commit_prepared_running, 0);
	pg_atomic_init_u32(&q->hooks_generation, 0);
	pg_atomic_init_u32(&q->backfills_generation, 0);
	pg_atomic_init_u32(&q->ext_check_request, 0);
	pg_atomic_init_u32(&q->ext_check_done, 0);
	LWLockRelease(q->lock);
}

/* Gives back every chunk of a dbslot being freed (its lock held). */
static void
release_all_chunks(CocoDbSlot *q)
{
	SpinLockAcquire(&coco_dbslots->pool_mutex);
	for (uint64 pos = q->free_from; pos < q->alloc_end; pos += coco_dbslots->chunk_size)
		coco_dbslots->free_chunks[coco_dbslots->nfree++] =
			q->chunk_ids[(pos / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks];
	q->nheld = 0;
	SpinLockRelease(&coco_dbslots->pool_mutex);
	q->free_from = q->alloc_end = q->head = q->tail;
}

/* The dbslot of database dboid, or NULL; the registry lock held. */
static CocoDbSlot *
find_slot(Oid dboid)
{
	for (int i = 0; i < coco_dbslots->nslots; i++)
		if (coco_dbslots->slots[i].dboid == dboid)
			return &coco_dbslots->slots[i];
	return NULL;
}

/*
 * Makes sure database dboid has a dbslot; a new one gets the given state.
 * Returns it, or NULL if all cocohooks.max_databases dbslots are taken.
 */
CocoDbSlot *
coco_dbslot_ensure(Oid dboid, int state, bool *created)
{
	CocoDbSlot *q;

	*created = false;
	LWLockAcquire(coco_dbslots->registry_lock, LW_SHARED);
	q = find_slot(dboid);
	LWLockRelease(coco_dbslots->registry_lock);
	if (q)
		return q;
	LWLockAcquire(coco_dbslots->registry_lock, LW_EXCLUSIVE);
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
	LWLockRelease(coco_dbslots->registry_lock);
	return q;
}

/*
 * Frees database dboid's dbslot, if it has one (in state only_if, unless
 * that is negative); its queued events go.
 */
void
coco_dbslot_free(Oid dboid, int only_if)
{
	CocoDbSlot *q;

	LWLockAcquire(coco_dbslots->registry_lock, LW_EXCLUSIVE);
	q = find_slot(dboid);
	if (q && (only_if < 0 || q->state == only_if))
	{
		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		release_all_chunks(q);
		q->dboid = InvalidOid;
		q->state = COCO_DBSLOT_FREE;
		q->worker_pid = 0;
		q->generation++;
		LWLockRelease(q->lock);
		ConditionVariableBroadcast(&q->finished_cv);
	}
	LWLockRelease(coco_dbslots->registry_lock);
}

/*
 * Sets the state of database dboid's dbslot, if it has one, and returns the
 * state it had (COCO_DBSLOT_FREE if none).  With only_if >= 0, only a dbslot in
 * that state changes.
 */
int
coco_dbslot_set_state(Oid dboid, int state, int only_if)
{
	CocoDbSlot *q;
	int			old = COCO_DBSLOT_FREE;

	LWLockAcquire(coco_dbslots->registry_lock, LW_EXCLUSIVE);
	q = find_slot(dboid);
	if (q)
	{
		old = q->state;
		if (only_if < 0 || old == only_if)
			q->state = state;
	}
	LWLockRelease(coco_dbslots->registry_lock);
	return old;
}

/*
 * A copy of every dbslot in use, for the launcher: up to max entries of
 * (database, state, worker pid).  Returns how many.
 */
int
coco_dbslot_list(CocoDbSlotInfo *out, int max)
{
	int			n = 0;

	LWLockAcquire(coco_dbslots->registry_lock, LW_SHARED);
	for (int i = 0; i < coco_dbslots->nslots && n < max; i++)
	{
		CocoDbSlot *q = &coco_dbslots->slots[i];

		if (!OidIsValid(q->dboid))
			continue;
		out[n].dboid = q->dboid;
		out[n].state = q->state;
		out[n].worker_pid = q->worker_pid;
		n++;
	}
	LWLockRelease(coco_dbslots->registry_lock);
	return n;
}

int
coco_dbslot_count(void)
{
	return coco_dbslots ? coco_dbslots->nslots : 0;
}

/* The launcher's latch, set when a dbslot wants a worker. */
void
coco_dbslot_set_launcher(int pgprocno)
{
	pg_atomic_write_u32(&coco_dbslots->launcher_pgprocno,
						pgprocno < 0 ? INVALID_WORKER_PROCNO : (uint32) pgprocno);
}

void
coco_dbslot_wake_launcher(void)
{
	uint32		procno = pg_atomic_read_u32(&coco_dbslots->launcher_pgprocno);

	if (procno != INVALID_WORKER_PROCNO)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * This database's dbslot, found once per process and again if it was freed
 * or given to another database since.  With create, a database without one
 * gets one (its worker is then started by the launcher).  NULL if it has
 * none.
 */
CocoDbSlot *
coco_dbslot_mine(bool create)
{
	static bool said_unserved = false;

	if (coco_dbslots == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (mine && mine->dboid == MyDatabaseId && mine->generation == mine_generation)
		return mine;
	mine = NULL;
	if (create)
	{
		bool		created;
		CocoDbSlot *q = coco_dbslot_ensure(MyDatabaseId, COCO_DBSLOT_WANTED, &created);

		if (created)
			coco_dbslot_wake_launcher();
		if (q)
		{
			mine = q;
			mine_generation = q->generation;
		}
		else if (!said_unserved)
		{
			/* a database copied from a template with the extension, say */
			said_unserved = true;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("cocohooks does not deliver the events of this database"),
					 errdetail("%d databases are served, as many as \"%s\" allows; the events of this one are not sent.",
							   coco_dbslots->nslots, "cocohooks.max_databases"),
					 errhint("Raise \"%s\" and restart the server, or drop the extension in a database that does not use it.",
							 "cocohooks.max_databases")));
		}
	}
	else
	{
		LWLockAcquire(coco_dbslots->registry_lock, LW_SHARED);
		mine = find_slot(MyDatabaseId);
		if (mine)
			mine_generation = mine->generation;
		LWLockRelease(coco_dbslots->registry_lock);
	}
	return mine;
}

/* Whether this database has a dbslot now. */
bool
coco_dbslot_exists(void)
{
	return coco_dbslot_mine(false) != NULL;
}

bool
coco_dbslots_available(void)
{
	return coco_dbslots != NULL;
}

/* Time the dbslot was set up; with a sequence number it names an event. */
TimestampTz
coco_dbslot_epoch(void)
{
	return coco_dbslot_mine(true) ? mine->epoch : 0;
}

/* Tells the dbslot which process is its worker (pgprocno < 0: none). */
void
coco_dbslot_set_worker(int pgprocno)
{
	if (!coco_dbslot_mine(false))
		return;
	LWLockAcquire(coco_dbslots->registry_lock, LW_EXCLUSIVE);
	if (mine->dboid == MyDatabaseId)
		mine->worker_pid = pgprocno < 0 ? 0 : MyProcPid;
	LWLockRelease(coco_dbslots->registry_lock);
	pg_atomic_write_u32(&mine->worker_pgprocno,
						pgprocno < 0 ? INVALID_WORKER_PROCNO : (uint32) pgprocno);
}

/* Sets the latch of this database's worker, if it has one. */
void
coco_dbslot_wake_worker(void)
{
	uint32		procno;

	if (!coco_dbslot_mine(false))
		return;
	procno = pg_atomic_read_u32(&mine->worker_pgprocno);

	/*
	 * A stale number (the worker just exited) only sets some other
	 * process's latch, which every latch user tolerates.
	 */
	if (procno != INVALID_WORKER_PROCNO)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * One sleep on finished_cv (prepared by the caller), of at most 100 ms so
 * that a missed broadcast costs little; false once the deadline has passed.
 */
bool
coco_dbslot_sleep_until(CocoDbSlot *slot, TimestampTz deadline)
{
	long		remaining_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

	if (remaining_ms <= 0)
		return false;
	(void) ConditionVariableTimedSleep(&slot->finished_cv, Min(remaining_ms, 100),
									   PG_WAIT_EXTENSION);
	return true;
}

