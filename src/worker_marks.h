/*-------------------------------------------------------------------------
 *
 * worker_marks.h
 *	  The marks a database's worker and its backends signal each other
 *	  with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WORKER_MARKS_H
#define COCOHOOKS_WORKER_MARKS_H

#include "postgres.h"

/* backends: events the ring does not carry, and COMMIT PREPARED */
extern void coco_marks_note_wal_only(uint64 lsn);
extern void coco_marks_commit_prepared_begin(void);
extern void coco_marks_commit_prepared_end(uint64 lsn);

/* backends: the hooks changed; CREATE or DROP EXTENSION asks the worker to look */
extern void coco_marks_bump_hooks_generation(void);
extern bool coco_marks_request_extension_check(int wait_ms);

/* the worker: what backends told it */
extern bool coco_marks_wal_only(uint64 *lsn);
extern uint32 coco_marks_hooks_generation(void);
extern void coco_marks_bump_backfills_generation(void);
extern uint32 coco_marks_backfills_generation(void);
extern bool coco_marks_extension_check_requested(uint32 *request);
extern void coco_marks_extension_checked(uint32 request);

/* the worker: how far it has finished */
extern uint64 coco_marks_lose_unfinished(bool in_wal);
extern void coco_marks_hand_off_popped(void);
extern void coco_marks_store_requeued(void);
extern void coco_marks_finish_upto(uint64 seq);
extern void coco_marks_set_wal_done(uint64 lsn);
extern void coco_marks_set_wal_restart(uint64 lsn);

/* the worker: its counters */
extern void coco_marks_count_queued(int64 n);
extern void coco_marks_count_deliveries(uint64 delivered, uint64 failed,
										uint64 retried);
extern void coco_marks_set_in_flight(int n);
extern void coco_marks_set_parked(uint64 n);

#endif							/* COCOHOOKS_WORKER_MARKS_H */
