/*-------------------------------------------------------------------------
 *
 * wal_position.h
 *	  Where the WAL written so far ends, as an event id can name it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_POSITION_H
#define COCOHOOKS_WAL_POSITION_H

#include "postgres.h"

#include "access/xlogdefs.h"

extern XLogRecPtr coco_wal_last_record_end(void);

#endif							/* COCOHOOKS_WAL_POSITION_H */
