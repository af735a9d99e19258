/*-------------------------------------------------------------------------
 *
 * hooks_catalog.h
 *	  Column numbers of the hook catalog, cocohooks.hooks.
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
#ifndef HOOKS_CATALOG_H
#define HOOKS_CATALOG_H

#define Anum_hooks_id			1
#define Anum_hooks_collection	2
#define Anum_hooks_event		3
#define Anum_hooks_url			4
#define Anum_hooks_headers		5
#define Anum_hooks_secret		6
#define Anum_hooks_enabled		7
#define Anum_hooks_timeout_ms	8
#define Anum_hooks_max_retries	9
#define Anum_hooks_created_at	10

#define Natts_hooks				10

#endif							/* HOOKS_CATALOG_H */
