/*-------------------------------------------------------------------------
 *
 * wal_standby.h
 *	  On a standby: the follower that keeps each database's slot at the
 *	  last progress mark replayed, for the worker of a promoted server.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_STANDBY_H
#define COCOHOOKS_WAL_STANDBY_H

#include "postgres.h"

extern void coco_wal_standby_register(void);

extern PGDLLEXPORT void cocohooks_standby_main(Datum arg);

#endif							/* COCOHOOKS_WAL_STANDBY_H */
