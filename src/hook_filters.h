/*-------------------------------------------------------------------------
 *
 * hook_filters.h
 *	  Per-hook columns and exclude_columns, loaded into the hook cache.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_FILTERS_H
#define COCOHOOKS_HOOK_FILTERS_H

#include "postgres.h"

#include "access/htup.h"
#include "utils/array.h"
#include "utils/relcache.h"

#include "hook_cache.h"

extern void coco_hook_filter_load(CocoTableHooks *th, Relation rel, int event,
								  int index, int spec_off, int spec_len,
								  ArrayType *columns, ArrayType *exclude,
								  int64 hook_id, bool has_filter,
								  const char *filter_tree);
extern bool coco_hook_filter_fires(CocoTableHooks *th, CocoHookFilter *f,
								   Relation rel, CocoEventKind event,
								   HeapTuple document, HeapTuple old_row);

#endif							/* COCOHOOKS_HOOK_FILTERS_H */
