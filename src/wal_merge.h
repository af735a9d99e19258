/*-------------------------------------------------------------------------
 *
 * wal_merge.h
 *	  The shared queue's copies of events in the WAL, merged with what the
 *	  WAL reader delivers (cocohooks.durability = wal).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_MERGE_H
#define COCOHOOKS_WAL_MERGE_H

#include "postgres.h"

/* for the queue source (worker.c): before it pops, as it pops, as it starts */
extern bool coco_wal_merge_queue_paused(void);
extern void coco_wal_merge_note_popped(void);
extern bool coco_wal_merge_holds_popped(void);
extern bool coco_wal_merge_started_from_wal(uint64 lsn);
extern void coco_wal_merge_note_queued(uint64 lsn);
extern void coco_wal_merge_queued_finished(uint64 lsn);

#endif							/* COCOHOOKS_WAL_MERGE_H */
