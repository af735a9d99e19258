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
#include "nodes/nodes.h"
#include "utils/array.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "cocohooks.h"

#define MAX_TIMEOUT_MS		15000
#define MAX_RETRIES			20
#define MAX_CONCURRENT		10000
#define MAX_PER_SECOND		1000000.0
#define MAX_BATCH_SIZE		1000
#define MAX_BATCH_WAIT_MS	10000

/*
 * The settings of a hook: register_hook's arguments after collection and
 * event, and alter_hook's after hook_id, in this order (alter_hook's clear
 * sits before the batch settings: coco_setting_argno).
 */
typedef enum CocoSetting
{
	COCO_SETTING_URL,
	COCO_SETTING_HEADERS,
	COCO_SETTING_SECRET,
	COCO_SETTING_TIMEOUT_MS,
	COCO_SETTING_MAX_RETRIES,
	COCO_SETTING_COLUMNS,
	COCO_SETTING_EXCLUDE_COLUMNS,
	COCO_SETTING_ORDERING,
	COCO_SETTING_RETRY_FOR,
	COCO_SETTING_FILTER,
	COCO_SETTING_MAX_PER_SECOND,
	COCO_SETTING_MAX_CONCURRENT,
	COCO_SETTING_BATCH_SIZE,
	COCO_SETTING_BATCH_WAIT,
	COCO_NUM_SETTINGS
} CocoSetting;

typedef struct CocoSettingInfo
{
	const char *name;			/* the argument, and its column of cocohooks.hooks */
	Oid			type;
	bool		nullable;		/* NULL is a value: none, no limit, unsigned */
} CocoSettingInfo;

extern const CocoSettingInfo coco_settings[COCO_NUM_SETTINGS];

/* how the caller asks for a nullable setting's NULL, for the hints */
typedef enum CocoNoneBy
{
	COCO_NONE_BY_NULL,			/* register_hook: the argument NULL */
	COCO_NONE_BY_CLEAR			/* alter_hook: the setting named in clear */
} CocoNoneBy;

/*
 * alter_hook's clear came last when the batch settings were added: they
 * follow it, so that calls written before keep working.  register_hook has
 * no clear: its settings are in a row.
 */
#define COCO_SETTINGS_BEFORE_CLEAR	COCO_SETTING_BATCH_SIZE

/* the argument number of setting s, the settings starting at first */
static inline int
coco_setting_argno(int first, CocoSetting s, CocoNoneBy none_by)
{
	return first + (int) s +
		(none_by == COCO_NONE_BY_CLEAR && s >= COCO_SETTINGS_BEFORE_CLEAR ? 1 : 0);
}

extern bool coco_setting_given(FunctionCallInfo fcinfo, int first, CocoSetting s,
							   CocoNoneBy none_by);
extern void coco_check_settings(FunctionCallInfo fcinfo, int first,
								CocoNoneBy none_by);
extern Node *coco_check_collection_settings(FunctionCallInfo fcinfo, int first,
											Oid relid, CocoEventKind event,
											CocoNoneBy none_by);

extern void coco_require_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern CocoEventKind coco_check_event(const char *event);
extern void coco_check_url(const char *url);
extern void coco_check_headers(Jsonb *headers);
extern void coco_check_secret(const char *secret, const char *argname,
							  bool null_allowed);
extern void coco_check_range(const char *name, int value, int min, int max);
extern void coco_check_max_per_second(float4 value);
extern void coco_check_batch_size(int value);
extern void coco_check_batch_wait(Interval *wait);
extern void coco_check_retry_for(Interval *retry_for, CocoNoneBy none_by);
extern void coco_check_collection(Oid relid);
extern void coco_check_partition_family(Oid relid);
extern void coco_check_column_list(Oid relid, ArrayType *names,
								   const char *argname, bool exclude,
								   CocoNoneBy none_by);
extern void coco_check_ordering(const char *ordering);

#endif							/* COCOHOOKS_HOOK_ARGS_H */
