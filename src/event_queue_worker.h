/*-------------------------------------------------------------------------
 *
 * event_queue_worker.h
 *	  Functions of event_queue.c that only the worker calls and cocohooks.h
 *	  does not declare: the WAL reader's marks, for wait_for_deliveries(),
 *	  and the count of queued events.
 *
 * A stopgap: these belong in the header of the file that defines them,
 * once event_queue.c is split; until then this is their one declaration
 * (event_queue.c sees it through wal_source.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_QUEUE_WORKER_H
#define COCOHOOKS_EVENT_QUEUE_WORKER_H

#include "postgres.h"

extern void coco_queue_set_wal_done(uint64 lsn);
extern void coco_queue_set_wal_restart(uint64 lsn);
extern void coco_queue_count_queued(int64 n);

#endif							/* COCOHOOKS_EVENT_QUEUE_WORKER_H */
