/*-------------------------------------------------------------------------
 *
 * hook_admin.h
 *	  What the hook functions (hook_admin.c), their argument checks
 *	  (hook_args.c) and trigger management (hook_triggers.c) share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_ADMIN_H
#define COCOHOOKS_HOOK_ADMIN_H

#include "cocohooks.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#define MAX_TIMEOUT_MS		15000
#define MAX_RETRIES			20

/* hook_args.c */
extern void coco_require_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern CocoEventKind coco_check_event(const char *event);
extern void coco_check_url(const char *url);
extern void coco_check_headers(Jsonb *headers);
extern void coco_check_secret(const char *secret, const char *argname,
							  bool null_allowed);
extern void coco_check_range(const char *name, int value, int min, int max);
extern void coco_check_collection(Oid relid);
extern void coco_check_partition_family(Oid relid);
extern void coco_check_column_list(Oid relid, ArrayType *names,
								   const char *argname, bool exclude);
extern void coco_check_ordering(const char *ordering);

/* hook_triggers.c */
extern void coco_sync_triggers(Oid relid);

/* header_object.c */
typedef void (*CocoHeaderFn) (const char *name, int name_len,
							  JsonbValue *value, void *arg);
extern bool coco_headers_walk(Jsonb *headers, CocoHeaderFn fn, void *arg);

#endif							/* COCOHOOKS_HOOK_ADMIN_H */
