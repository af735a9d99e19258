/*-------------------------------------------------------------------------
 *
 * extension_watch.h
 *	  CREATE and DROP EXTENSION cocohooks, told to the database's worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EXTENSION_WATCH_H
#define COCOHOOKS_EXTENSION_WATCH_H

#include "postgres.h"

extern void coco_extension_watch_init(void);
extern void coco_extension_changed(void);

#endif							/* COCOHOOKS_EXTENSION_WATCH_H */
