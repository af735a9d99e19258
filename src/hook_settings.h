/*-------------------------------------------------------------------------
 *
 * hook_settings.h
 *	  The worker's copy of the hooks' settings, read from cocohooks.hooks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_SETTINGS_H
#define COCOHOOKS_HOOK_SETTINGS_H

#include "postgres.h"

extern void coco_hook_settings_refresh(void);
extern int64 coco_hook_retry_for_ms(int64 hook_id);

#endif							/* COCOHOOKS_HOOK_SETTINGS_H */
