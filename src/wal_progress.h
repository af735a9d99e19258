/*-------------------------------------------------------------------------
 *
 * wal_progress.h
 *	  Progress marks: each database's restart point, written into the WAL
 *	  so that a standby keeps what a promoted server needs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_PROGRESS_H
#define COCOHOOKS_WAL_PROGRESS_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "access/xlogreader.h"
#include "utils/timestamp.h"

/* the worker: notes its restart point; a mark goes out now and then */
extern XLogRecPtr coco_wal_progress_note(XLogRecPtr restart, bool events_finished,
										TimestampTz now, XLogRecPtr *start);
extern void coco_wal_progress_flush(void);
extern XLogRecPtr coco_wal_progress_marked(void);
extern void coco_wal_progress_want(XLogRecPtr lsn);

/* whoever drops a database's slot: the standby drops its copy too */
extern void coco_wal_progress_slot_dropped(Oid dboid);

/* the standby: a record that is a progress mark, read */
extern bool coco_wal_progress_read(XLogReaderState *r, Oid *dboid,
								   XLogRecPtr *restart);

#endif							/* COCOHOOKS_WAL_PROGRESS_H */
