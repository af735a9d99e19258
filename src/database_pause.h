/*-------------------------------------------------------------------------
 *
 * database_pause.h
 *	  Stops a database's worker for statements that need the database to
 *	  themselves.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DATABASE_PAUSE_H
#define COCOHOOKS_DATABASE_PAUSE_H

#include "postgres.h"

#include "nodes/nodes.h"

typedef struct CocoDbPause
{
	Oid			dboid;			/* the database the statement needs alone */
	bool		drop;			/* the statement drops it */
	bool		stopped;		/* its worker was stopped: start it again */
} CocoDbPause;

extern bool coco_database_pause_begin(Node *stmt, CocoDbPause *pause);
extern void coco_database_pause_failed(const CocoDbPause *pause);
extern void coco_database_pause_end(const CocoDbPause *pause);

#endif							/* COCOHOOKS_DATABASE_PAUSE_H */
