/*-------------------------------------------------------------------------
 *
 * saved_events.h
 *	  The events a worker saves at its exit in memory mode, and the next
 *	  worker's source of them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_SAVED_EVENTS_H
#define COCOHOOKS_SAVED_EVENTS_H

#include "postgres.h"

/* the next worker: loads them, starts them, notes when all are finished */
extern void coco_saved_events_load(void);
extern bool coco_saved_events_start(void);
extern bool coco_saved_events_waiting(void);
extern void coco_saved_events_note_finished(void);

/* a worker at its exit: saves every unfinished event */
extern void coco_saved_events_save(const char *popped, Size popped_len);

#endif							/* COCOHOOKS_SAVED_EVENTS_H */
