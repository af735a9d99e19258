/*-------------------------------------------------------------------------
 *
 * wal_standby.c
 *	  On a standby: the follower that keeps each database's slot at the
 *	  last progress mark replayed, for the worker of a promoted server.
 *
 * A standby replays the primary's WAL but none of its replication slots.
 * The follower reads the WAL as it is replayed and, for every progress
 * mark of a database (wal_progress.c), keeps a physical slot of the same
 * name as the primary's ("cocohooks_<dboid>") at the marked position, so
 * that the standby's restartpoints keep the WAL of every event the primary
 * had not finished.  When the standby is promoted, the follower stops and
 * each database's worker takes its slot over as after a crash: the events
 * are delivered again from the last mark, with the same webhook-ids.
 *
 * A mark with no position (the extension was dropped, or events went to
 * memory mode) and the replay of DROP DATABASE drop the slot.  A slot is
 * made at the first mark the follower sees, or at the first event of a
 * database that has none (so that a failover right after the first events,
 * before any mark, loses none of them); if the standby no longer has the
 * WAL a mark points at (a new standby, made from a backup taken after it),
 * the slot starts at the oldest WAL there is, and a LOG says so.
 *
 * Runs in: its own background worker, on a standby only (it exits at once
 * on a primary, and when the standby is promoted).  Connects to no
 * database.
 *
 * Invariants: a slot's restart point only moves up; a slot is held only
 * while it is being changed; the follower reads only replayed WAL and
 * waits on its latch with a timeout between reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "commands/dbcommands_xlog.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "pg_compat.h"
#include "settings.h"
#include "wal_internal.h"
#include "wal_progress.h"
#include "wal_slot.h"
#include "wal_standby.h"

#define FOLLOW_POLL_MS			100
#define RECORDS_PER_PASS		10000

static XLogReaderState *reader = NULL;
static ReadLocalXLogPageNoWaitPrivate reader_private;

/* databases known to have a slot here, so that an event costs no lock */
#define KNOWN_MAX	64
static Oid	known[KNOWN_MAX];
static int	nknown = 0;

static bool
is_known(Oid dboid)
{
	for (int i = 0; i < nknown; i++)
		if (known[i] == dboid)
			return true;
	return false;
}

static void
set_known(Oid dboid, bool has_slot)
{
	for (int i = 0; i < nknown; i++)
		if (known[i] == dboid)
		{
			if (!has_slot)
				known[i] = known[--nknown];
			return;
		}
	if (has_slot && nknown < KNOWN_MAX)
		known[nknown++] = dboid;
}

void
coco_wal_standby_register(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cocohooks");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cocohooks_standby_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cocohooks standby follower");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cocohooks standby follower");
	RegisterBackgroundWorker(&worker);
}

/* The oldest position whose WAL this server still has. */
static XLogRecPtr
oldest_wal_kept(void)
{
	XLogSegNo	removed = XLogGetLastRemovedSegno();
	XLogRecPtr	oldest;

	XLogSegNoOffsetToRecPtr(removed + 1, 0, wal_segment_size, oldest);
	return oldest;
}

/* Moves the held slot's restart point up to restart, and saves it. */
static void
move_held_slot(XLogRecPtr restart)
{
	bool		moved = false;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	if (restart > MyReplicationSlot->data.restart_lsn)
	{
		MyReplicationSlot->data.restart_lsn = restart;
		moved = true;
	}
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (moved)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
		ReplicationSlotsComputeRequiredLSN();
	}
}

/*
 * Makes the slot name at restart, or at the oldest WAL kept if that is
 * later; held on return.
 */
static void
create_slot_at(const char *name, XLogRecPtr restart, const char *from)
{
	XLogRecPtr	oldest = oldest_wal_kept();

	coco_slot_create(name);
	move_held_slot(Max(restart, oldest));

	/* a restartpoint may have removed WAL meanwhile: the slot holds it now */
	if (oldest_wal_kept() > Max(restart, oldest))
		move_held_slot(oldest_wal_kept());
	if (restart < oldest_wal_kept())
		ereport(LOG,
				(errmsg("cocohooks standby made replication slot \"%s\" at %X/%X, later than the %X/%X it follows",
						name, LSN_FORMAT_ARGS(oldest_wal_kept()), LSN_FORMAT_ARGS(restart)),
				 errdetail("The standby no longer has the WAL before %X/%X: if it is promoted before the primary finishes the events written there, they are not delivered.",
						   LSN_FORMAT_ARGS(oldest_wal_kept()))));
	else
		ereport(LOG,
				(errmsg("cocohooks standby made replication slot \"%s\" to keep WAL from %X/%X for a promotion",
						name, LSN_FORMAT_ARGS(restart)),
				 errdetail("The position is that of %s.", from)));
}

/* A progress mark of database dboid: its slot follows. */
static void
follow_mark(Oid dboid, XLogRecPtr restart)
{
	char		name[NAMEDATALEN];

	coco_wal_slot_name(name, dboid);
	if (XLogRecPtrIsInvalid(restart))
	{
		coco_wal_slot_drop_of(dboid, "the primary dropped it");
		set_known(dboid, false);
		return;
	}
	if (SearchNamedReplicationSlot(name, true) == NULL)
		create_slot_at(name, restart, "a progress mark of the primary");
	else
		coco_slot_acquire(name);
	move_held_slot(restart);
	ReplicationSlotRelease();
	set_known(dboid, true);
}

/*
 * An event of database dboid at start: if the database has no slot here
 * yet, one is made there, before any mark says more.
 */
static void
follow_event(Oid dboid, XLogRecPtr start)
{
	char		name[NAMEDATALEN];

	if (is_known(dboid))
		return;
	coco_wal_slot_name(name, dboid);
	if (SearchNamedReplicationSlot(name, true) == NULL)
	{
		create_slot_at(name, start, "the first event of the database replayed here");
		ReplicationSlotRelease();
	}
	set_known(dboid, true);
}

static void
follow_record(XLogReaderState *r)
{
	Oid			dboid;
	XLogRecPtr	restart;
	Size		len;
	bool		transactional;
	bool		batch;

	if (coco_wal_progress_read(r, &dboid, &restart))
		follow_mark(dboid, restart);
	else if (coco_wal_event_message(r, &dboid, &len, &transactional, &batch) != NULL)
		follow_event(dboid, r->ReadRecPtr);
	else if (XLogRecGetRmid(r) == RM_DBASE_ID &&
			 (XLogRecGetInfo(r) & ~XLR_INFO_MASK) == XLOG_DBASE_DROP)
	{
		xl_dbase_drop_rec *rec = (xl_dbase_drop_rec *) XLogRecGetData(r);

		coco_wal_slot_drop_of(rec->db_id, "its database was dropped");
		set_known(rec->db_id, false);
	}
}

/*
 * Where to start reading: the oldest of our slots' restart points (marks
 * after it are read again, which moves nothing back), else the redo point
 * this standby's replay started from.
 */
static XLogRecPtr
follow_start(void)
{
	XLogRecPtr	start = InvalidXLogRecPtr;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];
		Oid			dboid;
		XLogRecPtr	restart;

		if (!slot->in_use || !coco_wal_slot_parse_name(NameStr(slot->data.name), &dboid))
			continue;
		SpinLockAcquire(&slot->mutex);
		restart = slot->data.restart_lsn;
		SpinLockRelease(&slot->mutex);
		if (!XLogRecPtrIsInvalid(restart) &&
			(XLogRecPtrIsInvalid(start) || restart < start))
			start = restart;
	}
	LWLockRelease(ReplicationSlotControlLock);
	if (XLogRecPtrIsInvalid(start))
		start = GetRedoRecPtr();
	return Max(start, oldest_wal_kept());
}

/*
 * Reads the replayed WAL from *next on, a bounded number of records;
 * returns whether it reached the end of what is replayed.
 */
static bool
follow_replayed(XLogRecPtr *next, bool *positioned)
{
	char	   *errormsg;

	if (!*positioned)
	{
		XLogRecPtr	first;

		reader_private.end_of_wal = false;
		first = XLogFindNextRecord(reader, *next);
		if (XLogRecPtrIsInvalid(first))
			return true;
		XLogBeginRead(reader, first);
		*next = first;
		*positioned = true;
	}
	for (int i = 0; i < RECORDS_PER_PASS; i++)
	{
		XLogRecord *rec;

		if (*next >= GetXLogReplayRecPtr(NULL))
			return true;
		reader_private.end_of_wal = false;
		rec = XLogReadRecord(reader, &errormsg);
		if (rec == NULL)
		{
			if (!reader_private.end_of_wal && errormsg)
				ereport(LOG,
						(errmsg("cocohooks standby follower could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(*next), errormsg)));
			XLogBeginRead(reader, *next);
			return true;
		}
		follow_record(reader);
		*next = reader->EndRecPtr;
	}
	return false;
}

void
cocohooks_standby_main(Datum arg)
{
	XLogRecPtr	next;
	bool		positioned = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* a primary has its workers' slots: nothing to follow */
	if (!RecoveryInProgress() || !coco_wal_mode())
		proc_exit(0);

	reader = coco_wal_reader_allocate(&reader_private);
	next = follow_start();
	ereport(LOG,
			(errmsg("cocohooks standby follower reads progress marks from %X/%X",
					LSN_FORMAT_ARGS(next))));
	for (;;)
	{
		bool		at_end;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!RecoveryInProgress())
			break;
		at_end = follow_replayed(&next, &positioned);
		if (at_end)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 FOLLOW_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	ereport(LOG,
			(errmsg("cocohooks standby follower stops: the server was promoted at %X/%X",
					LSN_FORMAT_ARGS(next)),
			 errdetail("Each database's worker delivers its events from its slot's restart point.")));
	proc_exit(0);
}
