/*-------------------------------------------------------------------------
 *
 * row_json.h
 *	  Rows as JSON objects, without to_jsonb where the types allow.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_ROW_JSON_H
#define COCOHOOKS_ROW_JSON_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/relcache.h"

/* how to print a table's rows without to_jsonb (opaque) */
typedef struct CocoRowJsonPlan CocoRowJsonPlan;

struct CocoExclusion;
extern CocoRowJsonPlan *coco_row_json_plan(Relation rel);
extern void coco_row_json_append(StringInfo buf, CocoRowJsonPlan *plan,
								 FmgrInfo *to_jsonb, TupleDesc desc,
								 HeapTuple tuple, const struct CocoExclusion *ex);

#endif							/* COCOHOOKS_ROW_JSON_H */
