/*-------------------------------------------------------------------------
 *
 * event_ring.h
 *	  Each database's ring of event messages in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_RING_H
#define COCOHOOKS_EVENT_RING_H

#include "postgres.h"

/* backends */
extern int	coco_ring_push(const char *messages, Size len);
extern void coco_ring_count_dropped(uint64 n);

/* the worker */
extern Size coco_ring_pop(char *dst, Size dst_size, int max_messages,
						  int *nmessages, Size *needed);
extern bool coco_ring_is_empty(void);
extern void coco_ring_positions(uint64 *head, uint64 *tail);

#endif							/* COCOHOOKS_EVENT_RING_H */
