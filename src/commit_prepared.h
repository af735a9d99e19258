/*-------------------------------------------------------------------------
 *
 * commit_prepared.h
 *	  COMMIT PREPARED and document order (cocohooks.durability = wal).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_COMMIT_PREPARED_H
#define COCOHOOKS_COMMIT_PREPARED_H

#include "postgres.h"

#include "nodes/nodes.h"

extern bool coco_commit_prepared_begin(Node *stmt);
extern void coco_commit_prepared_end(void);

#endif							/* COCOHOOKS_COMMIT_PREPARED_H */
