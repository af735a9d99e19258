/*-------------------------------------------------------------------------
 *
 * pending_events.h
 *	  post_* events held until their transaction commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_PENDING_EVENTS_H
#define COCOHOOKS_PENDING_EVENTS_H

#include "postgres.h"

extern void coco_pending_init(void);
extern void coco_pending_add(const char *message, Size len);
extern bool coco_pending_batching(void);
extern void coco_pending_add_batched(const char *message, Size len);

/* events that could not be queued, counted where cocohooks.stats shows them */
extern void coco_note_dropped(uint64 n);

#endif							/* COCOHOOKS_PENDING_EVENTS_H */
