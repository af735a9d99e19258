/*-------------------------------------------------------------------------
 *
 * dbslot_internal.h
 *	  What the files of the shared-memory side share: the layout of the
 *	  per-database slots and the chunk pool (db_slots.c, event_ring.c,
 *	  worker_marks.c, stats.c).  Nobody else includes it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DBSLOT_INTERNAL_H
#define COCOHOOKS_DBSLOT_INTERNAL_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "db_slots.h"

typedef struct CocoDbSlot
{
	LWLock	   *lock;
	/* protected by the registry lock (and changed only with lock held too) */
	Oid			dboid;			/* InvalidOid: a free dbslot */
	uint32		generation;		/* bumped each time the dbslot is set up */
	int			state;			/* COCO_DBSLOT_* */
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
	TimestampTz epoch;			/* when the dbslot was set up */
	/* lock-free */
	pg_atomic_uint32 worker_pgprocno;	/* INVALID_WORKER_PROCNO when none */
	pg_atomic_uint64 finished_seq;
	ConditionVariable finished_cv;
	pg_atomic_uint64 queued;
	pg_atomic_uint64 delivered;
	pg_atomic_uint64 failed;
	pg_atomic_uint64 retried;
	pg_atomic_uint64 dropped;
	pg_atomic_uint32 in_flight;
	pg_atomic_uint64 parked;	/* deliveries parked in cocohooks.retry_queue */
	/* events saved to the event store and not yet queued again */
	pg_atomic_uint32 store_pending;
	pg_atomic_uint32 store_generation;	/* bumped at every save */
	/* the worker reads events from the WAL: everything before wal_done is finished */
	pg_atomic_uint32 wal_active;
	pg_atomic_uint64 wal_done;
	pg_atomic_uint64 wal_restart;	/* the oldest WAL position kept for events */
	/*
	 * Events the queue does not carry (see coco_marks_note_wal_only): the
	 * end of the newest one's WAL record, and COMMIT PREPAREDs running.
	 */
	pg_atomic_uint64 wal_only_lsn;
	pg_atomic_uint32 commit_prepared_running;
	/* the extension was created or dropped: the worker looks and answers */
	pg_atomic_uint32 hooks_generation;	/* bumped when a hooks change commits */
	pg_atomic_uint32 backfills_generation;	/* bumped when a backfill starts or is cancelled */
	pg_atomic_uint32 ext_check_request;
	pg_atomic_uint32 ext_check_done;
} CocoDbSlot;

typedef struct CocoDbSlots
{
	LWLock	   *registry_lock;	/* dbslot set-up and states */
	slock_t		pool_mutex;		/* the free chunks and every nheld */
	uint32		pool_chunks;
	uint32		chunk_size;
	uint32		nfree;
	uint32	   *free_chunks;	/* stack of free chunk ids */
	char	   *pool;
	int			nslots;
	TimestampTz last_epoch;
	pg_atomic_uint32 launcher_pgprocno;
	pg_atomic_uint64 no_slot_dropped;	/* events of a database without a dbslot */
	CocoDbSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} CocoDbSlots;

/* the most a process maps ahead at once, and the biggest chunk */
#define RING_SEGMENT	((uint64) 1024 * 1024)

#define INVALID_WORKER_PROCNO PG_UINT32_MAX

/* db_slots.c */
extern CocoDbSlots *coco_dbslots;
extern CocoDbSlot *coco_dbslot_mine(bool create);
extern bool coco_dbslot_sleep_until(CocoDbSlot *slot, TimestampTz deadline);

#endif							/* COCOHOOKS_DBSLOT_INTERNAL_H */
