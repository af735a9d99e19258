/*-------------------------------------------------------------------------
 *
 * failing_hooks.h
 *	  Since when each hook has been failing: the clock that disables a hook
 *	  nothing is delivered to (cocohooks.disable_failing_hooks_after).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_FAILING_HOOKS_H
#define COCOHOOKS_FAILING_HOOKS_H

#include "postgres.h"

#include "utils/timestamp.h"

extern void coco_failing_init(void);
extern TimestampTz coco_failing_note_failure(int64 hook_id, TimestampTz now);
extern void coco_failing_note_success(int64 hook_id);
extern bool coco_failing_dirty(void);
extern void coco_failing_write(void);
extern void coco_failing_written(void);
extern void coco_failing_reconcile(void);

#endif							/* COCOHOOKS_FAILING_HOOKS_H */
