/*-------------------------------------------------------------------------
 *
 * hook_admin.h
 *	  The SQL functions that manage hooks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_ADMIN_H
#define COCOHOOKS_HOOK_ADMIN_H

#include "postgres.h"

#include "as_owner.h"

/* the collection of a hook the caller may change (as owner: st) */
extern Oid	coco_hook_collection_for_change(int64 hook_id, CocoAsOwner *st);

#endif							/* COCOHOOKS_HOOK_ADMIN_H */
