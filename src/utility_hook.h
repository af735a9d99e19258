/*-------------------------------------------------------------------------
 *
 * utility_hook.h
 *	  Our one ProcessUtility hook.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_UTILITY_HOOK_H
#define COCOHOOKS_UTILITY_HOOK_H

extern void coco_utility_hook_init(void);

#endif							/* COCOHOOKS_UTILITY_HOOK_H */
