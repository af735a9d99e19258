/*-------------------------------------------------------------------------
 *
 * db_slots.h
 *	  The per-database slots in shared memory: which databases are served,
 *	  in what state, by which worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DB_SLOTS_H
#define COCOHOOKS_DB_SLOTS_H

#include "postgres.h"

#include "utils/timestamp.h"

/*
 * A database's dbslot: free; reserved by a CREATE EXTENSION not yet
 * committed; wanting a worker; with its worker; or stopped
 * (database_pause.c: no worker may start).
 */
#define COCO_DBSLOT_FREE		0
#define COCO_DBSLOT_RESERVED	1
#define COCO_DBSLOT_WANTED		2
#define COCO_DBSLOT_RUNNING		3
#define COCO_DBSLOT_STOPPED		4

typedef struct CocoDbSlotInfo
{
	Oid			dboid;
	int			state;
	int			worker_pid;
} CocoDbSlotInfo;

typedef struct CocoDbSlot CocoDbSlot;

/* shared memory, in the postmaster's hooks */
extern void coco_dbslot_shmem_request(void);
extern void coco_dbslot_shmem_startup(void);
extern bool coco_dbslots_available(void);

/* the registry: any process */
extern CocoDbSlot *coco_dbslot_ensure(Oid dboid, int state, bool *created);
extern void coco_dbslot_free(Oid dboid, int only_if);
extern int	coco_dbslot_set_state(Oid dboid, int state, int only_if);
extern int	coco_dbslot_list(CocoDbSlotInfo *out, int max);
extern int	coco_dbslot_count(void);

/* this database's dbslot */
extern bool coco_dbslot_exists(void);
extern TimestampTz coco_dbslot_epoch(void);

/* latches: the launcher's, and this database's worker's */
extern void coco_dbslot_set_launcher(int pgprocno);
extern void coco_dbslot_wake_launcher(void);
extern void coco_dbslot_set_worker(int pgprocno);
extern void coco_dbslot_wake_worker(void);

#endif							/* COCOHOOKS_DB_SLOTS_H */
