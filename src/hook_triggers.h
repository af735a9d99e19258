/*-------------------------------------------------------------------------
 *
 * hook_triggers.h
 *	  The triggers of a hooked table, kept in line with its hooks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_TRIGGERS_H
#define COCOHOOKS_HOOK_TRIGGERS_H

#include "postgres.h"

extern void coco_sync_triggers(Oid relid);

#endif							/* COCOHOOKS_HOOK_TRIGGERS_H */
