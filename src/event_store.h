/*-------------------------------------------------------------------------
 *
 * event_store.h
 *	  Events a memory-mode worker saves to a file as it exits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_STORE_H
#define COCOHOOKS_EVENT_STORE_H

#include "postgres.h"

#include "lib/stringinfo.h"

extern bool coco_store_save(const char *messages, Size len, uint64 n);
extern uint64 coco_store_load(StringInfo buf);
extern void coco_store_remove(void);
extern bool coco_store_exists(Oid dboid);
extern void coco_store_remove_for(Oid dboid);
extern void coco_store_adopt_legacy(const char *dbname);

#endif							/* COCOHOOKS_EVENT_STORE_H */
