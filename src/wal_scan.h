/*-------------------------------------------------------------------------
 *
 * wal_scan.h
 *	  The scan cursor of the worker's WAL reader: records to jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_SCAN_H
#define COCOHOOKS_WAL_SCAN_H

#include "postgres.h"

extern void coco_wal_scan(void);

#endif							/* COCOHOOKS_WAL_SCAN_H */
