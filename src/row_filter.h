/*-------------------------------------------------------------------------
 *
 * row_filter.h
 *	  A hook's row filter, evaluated per row by the row trigger.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_ROW_FILTER_H
#define COCOHOOKS_ROW_FILTER_H

#include "postgres.h"

#include "access/htup.h"
#include "utils/relcache.h"

typedef struct CocoRowFilter CocoRowFilter;
typedef struct CocoRowFilterRows CocoRowFilterRows;

extern CocoRowFilter *coco_row_filter_load(Relation rel, Oid collection_relid,
										   int64 hook_id, const char *tree);
extern CocoRowFilterRows *coco_row_filter_rows_create(Relation rel);
extern bool coco_row_filter_passes(CocoRowFilter *filter, CocoRowFilterRows *rows,
								   HeapTuple new_row, HeapTuple old_row);

#endif							/* COCOHOOKS_ROW_FILTER_H */
