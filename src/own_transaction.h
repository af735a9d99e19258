/*-------------------------------------------------------------------------
 *
 * own_transaction.h
 *	  A background process's short transaction of its own, whose error is
 *	  reported rather than raised.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_OWN_TRANSACTION_H
#define COCOHOOKS_OWN_TRANSACTION_H

#include "postgres.h"

extern bool coco_in_own_transaction(void (*fn) (void *arg), void *arg);

#endif							/* COCOHOOKS_OWN_TRANSACTION_H */
