/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The background worker that starts one worker per database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_LAUNCHER_H
#define COCOHOOKS_LAUNCHER_H

#include "postgres.h"

extern void coco_launcher_register(void);
extern PGDLLEXPORT void cocohooks_launcher_main(Datum main_arg);

#endif							/* COCOHOOKS_LAUNCHER_H */
