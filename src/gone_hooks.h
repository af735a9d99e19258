/*-------------------------------------------------------------------------
 *
 * gone_hooks.h
 *	  Hooks whose receiver answered 410 Gone: disabled, and their waiting
 *	  events not sent.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_GONE_HOOKS_H
#define COCOHOOKS_GONE_HOOKS_H

#include "cocohooks.h"

/* A hook the worker disables in the catalog with its next log rows. */
typedef struct CocoHookDisable
{
	int64		hook_id;
	char		reason[96];
} CocoHookDisable;

extern void coco_gone_note(int64 hook_id);
extern bool coco_gone_skips(int64 hook_id, TimestampTz queued_at,
							TimestampTz *gone_at);
extern int	coco_gone_pending(CocoHookDisable **disables);
extern void coco_gone_written(void);

#endif							/* COCOHOOKS_GONE_HOOKS_H */
