/*-------------------------------------------------------------------------
 *
 * hooks_catalog.h
 *	  Column numbers of the hook catalog, cocohooks.hooks, and of its
 *	  settings history, cocohooks.hook_versions.
 *
 * The install script of every version and the upgrade scripts create these
 * columns at these positions; new columns are only ever appended, so the
 * numbers hold on a fresh install and on an updated one alike (the upgrade
 * test compares the two).  Rows are read with heap_getattr, never deformed
 * into arrays of Natts_hooks entries: a catalog with more columns than this
 * library knows (a newer schema, or one a superuser altered) is read safely,
 * and a column this library knows but the catalog lacks reads as NULL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOKS_CATALOG_H
#define COCOHOOKS_HOOKS_CATALOG_H

#define Anum_hooks_id			1
#define Anum_hooks_collection	2
#define Anum_hooks_event		3
#define Anum_hooks_url			4
#define Anum_hooks_headers		5
#define Anum_hooks_secret		6
#define Anum_hooks_enabled		7
#define Anum_hooks_timeout_ms	8
#define Anum_hooks_max_retries	9	/* NULL from 0.3.0: no limit */
#define Anum_hooks_created_at	10
/* 0.2.0 */
#define Anum_hooks_disabled_reason	11
#define Anum_hooks_previous_secret	12
#define Anum_hooks_previous_secret_until	13
#define Anum_hooks_columns		14
#define Anum_hooks_exclude_columns	15
#define Anum_hooks_ordering		16
/* 0.3.0 */
#define Anum_hooks_retry_for	17
#define Anum_hooks_settings_version	18	/* what messages name (cocohooks.h) */
#define Anum_hooks_filter		19	/* the row filter's text */
#define Anum_hooks_filter_tree	20	/* ... compiled: nodeToString() */
#define Anum_hooks_max_per_second	21
#define Anum_hooks_max_concurrent	22
#define Anum_hooks_batch_size	23
#define Anum_hooks_batch_wait	24

#define Natts_hooks				24

/*
 * cocohooks.hook_versions (0.3.0): a hook's settings as they were before a
 * change, or before it was unregistered, kept while events may name them.
 */
#define Anum_versions_hook_id		1
#define Anum_versions_settings_version	2
#define Anum_versions_url			3
#define Anum_versions_headers		4
#define Anum_versions_timeout_ms	5
#define Anum_versions_max_retries	6
#define Anum_versions_ordering		7
#define Anum_versions_retry_for		8
#define Anum_versions_unregistered	9
#define Anum_versions_secret		10
#define Anum_versions_previous_secret	11
#define Anum_versions_previous_secret_until	12
#define Anum_versions_retired_at	13
#define Anum_versions_batch_size	14
#define Anum_versions_batch_wait	15

#include "postgres.h"

#include "access/htup_details.h"

/* A column of a catalog row; NULL when this catalog lacks or dropped it. */
static inline Datum
coco_hooks_attr(HeapTuple tup, TupleDesc desc, int attnum, bool *isnull)
{
	if (attnum > desc->natts || TupleDescAttr(desc, attnum - 1)->attisdropped)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return heap_getattr(tup, attnum, desc, isnull);
}

#endif							/* COCOHOOKS_HOOKS_CATALOG_H */
