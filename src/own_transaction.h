/*-------------------------------------------------------------------------
 *
 * own_transaction.h
 *	  Work in a transaction or subtransaction of its own, whose error is
 *	  handed back rather than raised.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_OWN_TRANSACTION_H
#define COCOHOOKS_OWN_TRANSACTION_H

#include "postgres.h"

extern bool coco_in_own_transaction(void (*fn) (void *arg), void *arg);
extern bool coco_in_own_transaction_error(void (*fn) (void *arg), void *arg,
										  char **error);
extern ErrorData *coco_in_subtransaction(void (*fn) (void *arg), void *arg);

#endif							/* COCOHOOKS_OWN_TRANSACTION_H */
