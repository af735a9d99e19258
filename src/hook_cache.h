/*-------------------------------------------------------------------------
 *
 * hook_cache.h
 *	  Per-relation cache of the hooks a row trigger fires.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_CACHE_H
#define COCOHOOKS_HOOK_CACHE_H

#include "postgres.h"

#include "access/attnum.h"
#include "fmgr.h"
#include "utils/relcache.h"

#include "cocohooks.h"
#include "row_json.h"

/*
 * Columns a hook leaves out of document and old_data (exclude_columns);
 * hooks with the same set share one.
 */
typedef struct CocoExclusion
{
	int			natts;			/* of the firing relation */
	bool	   *skip;			/* per attribute: left out */
	int			nattnums;
	AttrNumber *attnums;		/* sorted: the set's identity */
	Datum		names;			/* text[] of their names, for the to_jsonb path */
} CocoExclusion;

struct CocoRowFilter;
struct CocoRowFilterRows;

/* A hook of an event whose table has filtered or excluding hooks. */
typedef struct CocoHookFilter
{
	int			spec_off;		/* its spec in CocoTableHooks.hooks[event] */
	int			spec_len;
	int			ncolumns;		/* columns: 0 when it fires on any update */
	AttrNumber *columns;		/* in the firing relation */
	FmgrInfo   *equal;			/* per column; fn_oid invalid: compare bytes */
	Oid		   *collations;
	int16	   *typlens;
	bool	   *typbyvals;
	bool		filtered;		/* registered with columns */
	struct CocoRowFilter *row_filter;	/* its filter, or NULL (row_filter.c) */
	int			exclusion;		/* index into CocoTableHooks.exclusions, or -1 */
} CocoHookFilter;

typedef struct CocoTableHooks
{
	Oid			relid;			/* the relation the trigger fired on */
	bool		valid;
	Oid			collection_relid;	/* the table hooks were registered on */
	char	   *collection;		/* its name, no schema */
	AttrNumber	pk_attnum;		/* in the firing relation; 0 if none */
	Oid			pk_typoutput;
	FmgrInfo	pk_out;
	FmgrInfo	to_jsonb;		/* to_jsonb() bound to the row type */
	CocoRowJsonPlan *row_plan;	/* NULL: rows go through to_jsonb */
	/* per event: prebuilt CocoHookSpec list of enabled hooks */
	int			nhooks[COCO_NUM_EVENTS];
	char	   *hooks[COCO_NUM_EVENTS];
	uint32		hooks_len[COCO_NUM_EVENTS];
	/*
	 * Operations (TRIGGER_TYPE_INSERT/UPDATE/DELETE) whose pre_* events the
	 * AFTER trigger sends, because a BEFORE trigger of the table fires after
	 * ours (see row_trigger.c).
	 */
	int16		pre_in_after;
	/*
	 * Per event: NULL when none of its hooks has columns, exclude_columns or
	 * a filter (every hook fires, one body); else one entry per hook
	 * (hook_filters.c).
	 */
	CocoHookFilter *filters[COCO_NUM_EVENTS];
	CocoExclusion *exclusions;
	int			nexclusions;
	struct CocoRowFilterRows *filter_rows;	/* NULL: no hook has a filter */
} CocoTableHooks;

extern void coco_hook_cache_init(void);
extern CocoTableHooks *coco_hook_cache_lookup(Relation rel, Oid tgoid);

#endif							/* COCOHOOKS_HOOK_CACHE_H */
