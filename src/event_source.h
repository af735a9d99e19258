/*-------------------------------------------------------------------------
 *
 * event_source.h
 *	  What a source of events gives the delivery engine with each event:
 *	  the callbacks through which the engine reports back.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_SOURCE_H
#define COCOHOOKS_EVENT_SOURCE_H

#include "postgres.h"

/*
 * Where an event came from, as the engine needs to know it: a source hands
 * each event in with its own (static) CocoEventSource and an argument of
 * its own, and the engine calls back through them; it knows no source by
 * name.  A callback left NULL is not called.
 */
typedef struct CocoEventSource
{
	const char *name;			/* "queue", "WAL", "saved events", ... */

	/*
	 * An event is finished: every delivery of it is done and logged (or
	 * parked).  wal_lsn is the end of its WAL record, 0 if it is not in the
	 * WAL.
	 */
	void		(*finished) (uint64 wal_lsn, void *source_arg);

	/*
	 * The position before which an event's WAL record is too old to be sent
	 * or retried (cocohooks.max_wal_retention), or 0: asked before each
	 * attempt of an event in the WAL.
	 */
	uint64		(*retention_cut) (void);

	/*
	 * The source keeps its events until they are finished (the WAL, the
	 * parked table): a worker that exits saves none of them.
	 */
	bool		keeps_events;
} CocoEventSource;

#endif							/* COCOHOOKS_EVENT_SOURCE_H */
