/*-------------------------------------------------------------------------
 *
 * wal_position.c
 *	  Where the last WAL record written so far ends.
 *
 * An event's id in wal mode is the end of its WAL record, and the worker's
 * done mark is such an end too; whoever compares a position with them
 * (a backend in wait_for_deliveries(), the worker when it starts reading)
 * needs the end of the last record, not the insert position.
 *
 * Runs in backends and in the worker.
 *
 * Invariants: keeps no state and raises no error; the position it returns
 * is never past the insert position.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"

#include "wal_position.h"

/*
 * Where the last record written so far ends: the insert position, less a
 * page header if it is at the start of a page (a record that ends at a
 * page's end leaves the insert position past the next page's header,
 * where no record ends).
 */
XLogRecPtr
coco_wal_last_record_end(void)
{
	XLogRecPtr	insert = GetXLogInsertRecPtr();

	if (XLogSegmentOffset(insert, wal_segment_size) == SizeOfXLogLongPHD)
		return insert - SizeOfXLogLongPHD;
	if (insert % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return insert - SizeOfXLogShortPHD;
	return insert;
}
