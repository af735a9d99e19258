/*-------------------------------------------------------------------------
 *
 * pg_compat.h
 *	  Every difference between the PostgreSQL major versions cocohooks
 *	  builds against (15, 16, 17, 18), in one place.
 *
 * The modules use the names defined here and never test PG_VERSION_NUM
 * themselves.  Each entry says which version changed what.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_PG_COMPAT_H
#define COCOHOOKS_PG_COMPAT_H

#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"

#if PG_VERSION_NUM < 150000
#error "cocohooks needs PostgreSQL 15 or later"
#endif

/*
 * 16 replaced pg_class_ownercheck() by object_ownercheck() on any catalog.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_class.h"
#define coco_table_ownercheck(relid, roleid) \
	object_ownercheck(RelationRelationId, (relid), (roleid))
#else
#define coco_table_ownercheck(relid, roleid) \
	pg_class_ownercheck((relid), (roleid))
#endif

/*
 * 16 exported guc_malloc() and added guc_free(); before, a GUC's extra
 * data was plain malloc()'d memory, freed with free().
 */
#if PG_VERSION_NUM < 160000
static inline void *
guc_malloc(int elevel, size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		ereport(elevel,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return p;
}
#define guc_free(p)		free(p)
#endif

/*
 * 16 added missing_ok to build_attrmap_by_name(); a partition has every
 * column of its parent, so none is missing.
 */
#if PG_VERSION_NUM >= 160000
#define coco_build_attrmap_by_name(indesc, outdesc) \
	build_attrmap_by_name((indesc), (outdesc), false)
#else
#define coco_build_attrmap_by_name(indesc, outdesc) \
	build_attrmap_by_name((indesc), (outdesc))
#endif

/*
 * 17 added infinite intervals.
 */
#if PG_VERSION_NUM < 170000
#define INTERVAL_NOT_FINITE(i)	false
#endif

/*
 * 17 dropped PGPROC.pgprocno: a process's number is its place in the
 * PGPROC array.
 */
#if PG_VERSION_NUM >= 170000
#define coco_my_procno()	GetNumberFromPGProc(MyProc)
#else
#define coco_my_procno()	(MyProc->pgprocno)
#endif

/*
 * 17's CreateWaitEventSet() takes a resource owner instead of a memory
 * context; a set with no owner lives until it is freed, as before.
 */
#if PG_VERSION_NUM >= 170000
#define coco_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define coco_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * 18's base64 functions take the binary side as uint8 rather than char.
 */
#if PG_VERSION_NUM >= 180000
typedef uint8 coco_b64_byte;
#else
typedef char coco_b64_byte;
#endif

/*
 * 18 dropped the execute_once argument of ExecutorRun and its hook.  A hook
 * is declared with COCO_EXECUTOR_RUN_PARAMS and passes its arguments on
 * with COCO_EXECUTOR_RUN_ARGS.
 */
#if PG_VERSION_NUM >= 180000
#define COCO_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define COCO_EXECUTOR_RUN_ARGS	queryDesc, direction, count
#else
#define COCO_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define COCO_EXECUTOR_RUN_ARGS	queryDesc, direction, count, execute_once
#endif

/*
 * 17 added a flush argument to LogLogicalMessage(); events are flushed with
 * their transaction's commit, not one by one.
 */
#if PG_VERSION_NUM >= 170000
#define coco_log_logical_message(prefix, data, size, transactional) \
	LogLogicalMessage((prefix), (data), (size), (transactional), false)
#else
#define coco_log_logical_message(prefix, data, size, transactional) \
	LogLogicalMessage((prefix), (data), (size), (transactional))
#endif

/*
 * 17 added failover and synced to ReplicationSlotCreate(); 18 added
 * error_if_invalid to ReplicationSlotAcquire().
 */
#if PG_VERSION_NUM >= 170000
#define coco_slot_create(name) \
	ReplicationSlotCreate((name), false, RS_PERSISTENT, false, false, false)
#else
#define coco_slot_create(name) \
	ReplicationSlotCreate((name), false, RS_PERSISTENT, false)
#endif
#if PG_VERSION_NUM >= 180000
#define coco_slot_acquire(name)	ReplicationSlotAcquire((name), true, false)
#else
#define coco_slot_acquire(name)	ReplicationSlotAcquire((name), true)
#endif

/* 16 renamed SetSingleFuncCall() (funcapi.h) */
#if PG_VERSION_NUM >= 160000
#define coco_materialized_srf(fcinfo)	InitMaterializedSRF((fcinfo), 0)
#else
#define coco_materialized_srf(fcinfo)	SetSingleFuncCall((fcinfo), 0)
#endif

/*
 * 17 added custom wait event names (WaitEventExtensionNew: shown in
 * pg_stat_activity.wait_event); before, every wait of an extension is
 * "Extension".
 */
#include "utils/wait_event.h"
#if PG_VERSION_NUM >= 170000
#define coco_wait_event_new(name)	WaitEventExtensionNew(name)
#else
#define coco_wait_event_new(name)	PG_WAIT_EXTENSION
#endif

#endif							/* COCOHOOKS_PG_COMPAT_H */
