/*-------------------------------------------------------------------------
 *
 * document_order.h
 *	  One delivery at a time per hook and document (ordering = 'document').
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DOCUMENT_ORDER_H
#define COCOHOOKS_DOCUMENT_ORDER_H

#include "postgres.h"

#include "lib/ilist.h"

#include "cocohooks.h"

extern void coco_order_init(MemoryContext cxt);
extern int64 coco_order_document_key(const char *document_id, int len);

/*
 * Puts a delivery in its document's line, document_key being
 * coco_order_document_key() of its id.  Returns true if it is first and
 * may go now; false if it waits (node is appended behind the others).
 * *line is set either way, for coco_order_leave().
 */
extern bool coco_order_enter(int64 hook_id, int64 document_key,
							 dlist_node *node, void **line);

/*
 * The line's first delivery finished for good: returns the node of the
 * one that is now first (no longer counted as waiting), or NULL.
 */
extern dlist_node *coco_order_leave(void *line);

/* the node of the delivery that goes now in line */
extern dlist_node *coco_order_first(void *line);

/* deliveries waiting behind an earlier one of their document */
extern int	coco_order_waiting(void);

#endif							/* COCOHOOKS_DOCUMENT_ORDER_H */
