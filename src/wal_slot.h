/*-------------------------------------------------------------------------
 *
 * wal_slot.h
 *	  The replication slot "cocohooks_<database oid>" that keeps the WAL of
 *	  a database's events (cocohooks.durability = wal).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_SLOT_H
#define COCOHOOKS_WAL_SLOT_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "utils/timestamp.h"

/* the slot's name for database dboid, into buf of NAMEDATALEN bytes */
extern void coco_wal_slot_name(char *buf, Oid dboid);
extern bool coco_wal_slot_parse_name(const char *name, Oid *dboid);

/* the worker: takes or makes its database's slot, moves it, keeps it, drops it */
extern XLogRecPtr coco_wal_slot_take(void);
extern void coco_wal_slot_move_restart(XLogRecPtr restart, TimestampTz now);
extern void coco_wal_slot_save(void);
extern XLogRecPtr coco_wal_slot_saved_restart(void);
extern void coco_wal_slot_release_and_drop(const char *why);
extern void coco_wal_slot_drop_own(void);

/* a backend: CREATE EXTENSION makes it, DROP EXTENSION drops it */
extern bool coco_wal_slot_create_for_install(XLogRecPtr install_start);
extern void coco_wal_slot_drop_unused(const char *why);

/* the launcher, DROP DATABASE, a standby: the slots of databases that are gone */
extern void coco_wal_slot_drop_of(Oid dboid, const char *why);
extern void coco_wal_slot_drop_orphans(const Oid *dboids, int ndbs);

/* the postmaster, at start: slots it would refuse to start with */
extern void coco_wal_slot_remove_unusable(void);

#endif							/* COCOHOOKS_WAL_SLOT_H */
