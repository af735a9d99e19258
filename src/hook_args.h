/*-------------------------------------------------------------------------
 *
 * hook_args.h
 *	  Checks of the hook functions' arguments, raised before anything changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_ARGS_H
#define COCOHOOKS_HOOK_ARGS_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "cocohooks.h"

#define MAX_TIMEOUT_MS		15000
#define MAX_RETRIES			20
#define MAX_CONCURRENT		10000
#define MAX_PER_SECOND		1000000.0

extern void coco_require_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern CocoEventKind coco_check_event(const char *event);
extern void coco_check_url(const char *url);
extern void coco_check_headers(Jsonb *headers);
extern void coco_check_secret(const char *secret, const char *argname,
							  bool null_allowed);
extern void coco_check_range(const char *name, int value, int min, int max);
extern void coco_check_max_per_second(float4 value);
extern void coco_check_retry_for(Interval *retry_for);
extern void coco_check_collection(Oid relid);
extern void coco_check_partition_family(Oid relid);
extern void coco_check_column_list(Oid relid, ArrayType *names,
								   const char *argname, bool exclude);
extern void coco_check_ordering(const char *ordering);

#endif							/* COCOHOOKS_HOOK_ARGS_H */
