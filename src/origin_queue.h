/*-------------------------------------------------------------------------
 *
 * origin_queue.h
 *	  Per-receiver admission of deliveries in the worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_ORIGIN_QUEUE_H
#define COCOHOOKS_ORIGIN_QUEUE_H

#include "postgres.h"

#include "lib/ilist.h"

typedef struct CocoOrigin CocoOrigin;

extern CocoOrigin *coco_origin_for_url(const char *url, int url_len);
extern bool coco_origin_admit(CocoOrigin *origin, dlist_node *waiter);
extern dlist_node *coco_origin_release(CocoOrigin *origin);
extern dlist_node *coco_origin_next_waiter(CocoOrigin *origin);
extern int	coco_origin_waiting(void);
extern void coco_origin_note_protocol(CocoOrigin *origin, bool multiplexed);
extern void coco_origin_set_limits(int connections, int streams);

#endif							/* COCOHOOKS_ORIGIN_QUEUE_H */
