/*-------------------------------------------------------------------------
 *
 * wal_source.c
 *	  The worker's reader of the events in the WAL (cocohooks.durability =
 *	  wal): the truth behind the shared queue's fast path.
 *
 * Backends write every event into the WAL as a logical message with prefix
 * "cocohooks" (event_emit.c): post_* ones transactionally, under the xid of
 * the (sub)transaction that wrote the row; pre_* ones not.  The worker reads
 * them back with its own XLogReader, looking only at record headers, its
 * own messages and the transactions' commit and abort records:
 *
 *	the scan cursor reads every record once.  A transactional message only
 *	marks its xid as open, with the position of its first message; a
 *	commit (or COMMIT PREPARED) record turns the open xids it names (the
 *	transaction and its committed subtransactions) into a job: the range
 *	from their first message to the commit and the set of xids; an abort
 *	(or ROLLBACK PREPARED) forgets them.  A non-transactional message is a
 *	job of its own.  Jobs are made in commit order.
 *
 *	the delivery cursor reads each job's range again and hands its
 *	messages to the delivery engine, as far as the engine has room, so a
 *	million-row transaction is never all in memory.
 *
 * An event's id is the end of its WAL record, the same in the copy the
 * shared queue carries.  Events popped from the queue are remembered (until
 * the delivery cursor passes them) so that they are not delivered twice;
 * what the queue could not carry (it was full, or a crash emptied it) is
 * delivered from here.
 *
 * A physical replication slot, "cocohooks_<database oid>", reserves the WAL
 * from the restart point: the oldest position still needed, that is the
 * first message of any open transaction or unfinished job, or the scan
 * cursor.  After any crash the worker starts reading there again, so an
 * event whose transaction committed is delivered at least once, under the
 * same id.  The slot is saved to disk now and then, and at every orderly
 * exit; a crash only makes the next worker read a little more again.
 *
 * A transaction that a crash cut short leaves open xids with no commit or
 * abort record: once the scan has reached the end of the WAL, open xids
 * that are neither running, prepared nor committed are forgotten.
 *
 * All state is in the worker's memory context for the source; the number of
 * jobs and of remembered queue events is capped (the scan, and popping the
 * queue, pause at the cap).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>

#include "access/genam.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "catalog/pg_extension.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "replication/slot.h"
#include "storage/fd.h"
#include "storage/procarray.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cocohooks.h"
#include "delivery_engine.h"
#include "event_message.h"
#include "pg_compat.h"
#include "settings.h"
#include "wal_source.h"
#include "worker_marks.h"

#define SCAN_RECORDS_PER_PASS	20000
#define MAX_JOBS				20000
#define MAX_REMEMBERED_QUEUED	200000
#define SLOT_SAVE_INTERVAL_MS	1000
#define IDLE_POLL_MS			200
#define RESTART_INTERVAL_MS		100	/* how often the restart point moves */
#define CRASHED_CHECK_MS		1000

typedef struct OpenXact
{
	TransactionId xid;			/* hash key */
	XLogRecPtr	first_lsn;		/* start of its first message */
} OpenXact;

typedef struct Job
{
	dlist_node	node;
	XLogRecPtr	first_lsn;		/* start of its first message */
	XLogRecPtr	end_lsn;		/* end of its commit record, or its message */
	XLogRecPtr	next_lsn;		/* where the delivery cursor goes on */
	Size		next_offset;	/* and in a batch record there, from where */
	bool		read_all;		/* every message handed on */
	bool		give_up;		/* past cocohooks.max_wal_retention */
	TimestampTz commit_time;
	int			unfinished;		/* events handed on, not finished */
	int			nxids;			/* 0: one non-transactional message */
	TransactionId xids[FLEXIBLE_ARRAY_MEMBER];	/* sorted */
} Job;

typedef struct StartedEvent
{
	uint64		lsn;			/* hash key */
	TimestampTz started;
} StartedEvent;

typedef struct QueuedEvent
{
	uint64		lsn;			/* hash key */
	bool		finished;
	Job		   *job;			/* the job that met it while unfinished */
} QueuedEvent;

static bool active = false;
static MemoryContext source_cxt = NULL;
static XLogReaderState *scan_reader = NULL;
static XLogReaderState *deliver_reader = NULL;
static ReadLocalXLogPageNoWaitPrivate scan_private;
static ReadLocalXLogPageNoWaitPrivate deliver_private;
static XLogRecPtr scan_next = InvalidXLogRecPtr;	/* next record to scan */
static bool scan_positioned = false;
static bool scan_at_end = false;
static HTAB *open_xacts = NULL;
static dlist_head jobs = DLIST_STATIC_INIT(jobs);
static int	njobs = 0;
static HTAB *queued_events = NULL;
static HTAB *started_events = NULL;
static TimestampTz last_expiry = 0;
static TimestampTz last_restart_update = 0;
static TimestampTz last_crashed_check = 0;
static Job *first_unread = NULL;	/* the oldest job not all handed on */
static TimestampTz last_slot_save = 0;
static char slot_name[NAMEDATALEN];
static XLogRecPtr retention_cut = 0;	/* see coco_wal_retention_cut() */

/* queued events wait until the delivery cursor has handed on everything up to here */
static uint64 hold_until = 0;
static uint64 wal_only_seen = 0;
static bool hold_unknown = false;	/* popped while a COMMIT PREPARED ran */

static void remember_started(uint64 lsn);

static int
xid_compare(const void *a, const void *b)
{
	TransactionId x = *(const TransactionId *) a;
	TransactionId y = *(const TransactionId *) b;

	return (x > y) - (x < y);
}

static XLogReaderState *
allocate_reader(ReadLocalXLogPageNoWaitPrivate *private)
{
	XLogReaderState *r;

	r = XLogReaderAllocate(wal_segment_size, NULL,
						   XL_ROUTINE(.page_read = read_local_xlog_page_no_wait,
									  .segment_open = wal_segment_open,
									  .segment_close = wal_segment_close),
						   private);
	if (r == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	return r;
}

/* Whether the extension is installed in this database (reads the catalog). */
bool
coco_extension_installed(void)
{
	MemoryContext old = CurrentMemoryContext;
	bool		installed;

	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;

	StartTransactionCommand();

	/*
	 * Asked from the commit callback of the transaction that created or
	 * dropped the extension, before its invalidations are sent: a cache
	 * entry or a catalog snapshot kept from earlier would not see the change
	 * (get_extension_oid() uses a cache from PostgreSQL 18), so read the
	 * catalog itself with a new snapshot.
	 */
	InvalidateCatalogSnapshot();
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("cocohooks"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	installed = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	return installed;
}

/*
 * Where the last record written so far ends: the insert position, less a
 * page header if it is at the start of a page (a record that ends at a
 * page's end leaves the insert position past the next page's header).
 */
static uint64
last_record_end(void)
{
	XLogRecPtr	insert = GetXLogInsertRecPtr();

	if (XLogSegmentOffset(insert, wal_segment_size) == SizeOfXLogLongPHD)
		return insert - SizeOfXLogLongPHD;
	if (insert % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return insert - SizeOfXLogShortPHD;
	return insert;
}

/*
 * Makes this database's replication slot, with an ERROR that says what
 * for when none is free.
 */
static void
create_slot(const char *name)
{
	bool		free_slot = false;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots && !free_slot; i++)
		free_slot = !ReplicationSlotCtl->replication_slots[i].in_use;
	LWLockRelease(ReplicationSlotControlLock);
	if (!free_slot)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("cocohooks cannot keep WAL for the events of this database: all replication slots are in use"),
				 errdetail("Each database with the extension needs a replication slot of its own (\"%s\").", name),
				 errhint("Drop a replication slot that is not needed, or raise \"%s\" and restart the server.",
						 "max_replication_slots")));
	coco_slot_create(name);
	ReplicationSlotReserveWal();
	ReplicationSlotMarkDirty();
	ReplicationSlotSave();
	ReplicationSlotsComputeRequiredLSN();
}

/*
 * Creates the slot that reserves WAL for the events, or takes the one a
 * previous worker left, and positions the scan at its restart point.
 * Returns false when events are not read from the WAL: in memory mode,
 * when the server cannot keep WAL for them (with a WARNING), or while the
 * extension is not installed (then no slot is kept).
 */
bool
coco_wal_source_start(void)
{
	HASHCTL		ctl;
	XLogRecPtr	restart = InvalidXLogRecPtr;
	MemoryContext old;

	if (!coco_wal_mode())
	{
		coco_warn_if_wal_unavailable();
		coco_wal_source_drop_slot();
		return false;
	}
	if (!coco_extension_installed())
	{
		coco_wal_source_drop_slot();
		return false;
	}

	/*
	 * A new context each time: a context of an earlier start stays, since
	 * events still in the engine may point at its jobs.
	 */
	source_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks WAL source",
									   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(source_cxt);
	snprintf(slot_name, sizeof(slot_name), "cocohooks_%u", MyDatabaseId);

	if (SearchNamedReplicationSlot(slot_name, true) != NULL)
	{
		coco_slot_acquire(slot_name);
		SpinLockAcquire(&MyReplicationSlot->mutex);
		restart = MyReplicationSlot->data.restart_lsn;
		SpinLockRelease(&MyReplicationSlot->mutex);
		if (XLogRecPtrIsInvalid(restart))
		{
			/* invalidated: max_slot_wal_keep_size let its WAL go */
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("cocohooks replication slot \"%s\" lost the WAL it reserved",
							slot_name),
					 errdetail("Events in the WAL that was removed are lost; the slot is created anew."),
					 errhint("Do not let \"max_slot_wal_keep_size\" remove WAL that cocohooks still needs; \"cocohooks.max_wal_retention\" gives up waiting events with a log row instead.")));
			ReplicationSlotRelease();
			ReplicationSlotDrop(slot_name, true);
		}
	}
	if (MyReplicationSlot == NULL)
	{
		/* no free slot: the worker stops here and is started again */
		create_slot(slot_name);
		ereport(LOG,
				(errmsg("cocohooks created replication slot \"%s\" to keep WAL for its events",
						slot_name)));
		SpinLockAcquire(&MyReplicationSlot->mutex);
		restart = MyReplicationSlot->data.restart_lsn;
		SpinLockRelease(&MyReplicationSlot->mutex);
	}

	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(OpenXact);
	ctl.hcxt = source_cxt;
	open_xacts = hash_create("cocohooks open transactions", 256, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(QueuedEvent);
	queued_events = hash_create("cocohooks queued events", 1024, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.entrysize = sizeof(StartedEvent);
	started_events = hash_create("cocohooks events started from the WAL", 1024, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	scan_reader = allocate_reader(&scan_private);
	deliver_reader = allocate_reader(&deliver_private);
	scan_next = restart;
	scan_positioned = false;
	scan_at_end = false;
	dlist_init(&jobs);
	njobs = 0;
	first_unread = NULL;
	active = true;

	/*
	 * Events a previous worker popped and did not finish, and events the
	 * queue lost in a crash, are read again from the WAL: a queued event
	 * of the same document, written later, waits for them.
	 */
	hold_until = last_record_end();
	wal_only_seen = 0;
	hold_unknown = false;
	MemoryContextSwitchTo(old);
	last_slot_save = GetCurrentTimestamp();
	ereport(LOG,
			(errmsg("cocohooks worker reads events from the WAL from %X/%X",
					LSN_FORMAT_ARGS(restart))));
	return true;
}

bool
coco_wal_source_active(void)
{
	return active;
}

/*
 * The extension was created or dropped: start reading the WAL, or stop and
 * drop the slot so that nothing holds WAL for an extension that is gone.
 */
void
coco_wal_source_recheck(void)
{
	bool		installed;

	if (!coco_wal_mode())
		return;
	installed = coco_extension_installed();
	if (installed && !active)
		(void) coco_wal_source_start();
	else if (!installed && active)
	{
		active = false;
		coco_marks_set_wal_done(0);
		XLogReaderFree(scan_reader);
		XLogReaderFree(deliver_reader);
		scan_reader = deliver_reader = NULL;
		ReplicationSlotRelease();
		ReplicationSlotDrop(slot_name, true);
		ereport(LOG,
				(errmsg("cocohooks dropped replication slot \"%s\": the extension was dropped",
						slot_name)));
	}
}

/*
 * CREATE EXTENSION in wal mode, in the backend, before it commits: makes
 * the database's replication slot if there is none, so that the WAL of
 * the first events is kept from now on, however late the worker starts
 * (no free background worker, say) and whatever happens before it does.
 * The worker takes the slot over.  An ERROR here (no free replication
 * slot) fails the CREATE EXTENSION.  Returns whether it made one.
 */
bool
coco_wal_create_slot_for_install(void)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "cocohooks_%u", MyDatabaseId);
	if (!coco_wal_mode() || MyReplicationSlot != NULL ||
		SearchNamedReplicationSlot(name, true) != NULL)
		return false;
	create_slot(name);
	ReplicationSlotRelease();
	ereport(LOG,
			(errmsg("cocohooks created replication slot \"%s\" to keep WAL for its events",
					name)));
	return true;
}

/*
 * At postmaster start, before the startup process restores the replication
 * slots: with wal_level minimal or max_replication_slots 0, PostgreSQL
 * refuses to start while any slot exists, and cocohooks can use none (it
 * runs in memory mode).  So its slots, and only they, are removed, with a
 * WARNING: the server starts, as it would have before wal mode was used.
 */
void
coco_wal_remove_unusable_slots(void)
{
	DIR		   *dir;
	struct dirent *de;
	int			removed = 0;

	if (wal_level >= WAL_LEVEL_REPLICA && max_replication_slots > 0)
		return;
	dir = opendir("pg_replslot");
	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
	{
		unsigned int oid;
		char		tail;
		char		path[MAXPGPATH];

		if (sscanf(de->d_name, "cocohooks_%u%c", &oid, &tail) != 1)
			continue;
		snprintf(path, sizeof(path), "pg_replslot/%s", de->d_name);
		if (rmtree(path, true))
			removed++;
		else
			ereport(WARNING,
					(errmsg("cocohooks could not remove replication slot directory \"%s\"", path)));
	}
	closedir(dir);
	if (removed > 0)
	{
		fsync_fname("pg_replslot", true);
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks removed %d replication slots of its wal mode", removed),
				 errdetail("\"%s\" is below replica or \"%s\" is 0, and the server does not start with replication slots then; events written in wal mode and not yet delivered are not sent.",
						   "wal_level", "max_replication_slots"),
				 errhint("Set \"%s\" to replica and \"%s\" above 0 to keep events in the WAL again.",
						 "wal_level", "max_replication_slots")));
	}
}

/*
 * For a backend, after DROP EXTENSION commits (or a CREATE EXTENSION that
 * made the slot aborts): drops this database's replication slot unless a
 * worker holds it (that worker drops it itself as it sees the extension
 * gone).  Never raises an error: called from transaction callbacks.
 */
void
coco_wal_drop_unused_slot(const char *why)
{
	char		name[NAMEDATALEN];
	ReplicationSlot *slot;
	pid_t		holder = 0;
	MemoryContext cxt = CurrentMemoryContext;

	snprintf(name, sizeof(name), "cocohooks_%u", MyDatabaseId);
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	slot = SearchNamedReplicationSlot(name, false);
	if (slot != NULL)
	{
		SpinLockAcquire(&slot->mutex);
		holder = slot->active_pid;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	if (slot == NULL || holder != 0 || MyReplicationSlot != NULL)
		return;
	PG_TRY();
	{
		ReplicationSlotDrop(name, true);
		ereport(LOG,
				(errmsg("cocohooks dropped replication slot \"%s\": %s", name, why)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* taken meanwhile: whoever holds it drops it */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(LOG,
				(errmsg("cocohooks did not drop replication slot \"%s\": %s",
						name, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* Drops the slot of this database, if there is one (memory mode). */
void
coco_wal_source_drop_slot(void)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "cocohooks_%u", MyDatabaseId);
	if (SearchNamedReplicationSlot(name, true) != NULL)
	{
		ReplicationSlotDrop(name, true);
		ereport(LOG,
				(errmsg("cocohooks dropped replication slot \"%s\": events are kept in memory only",
						name)));
	}
}

/*
 * Drops the replication slot of database dboid, if there is one and no one
 * uses it: the database was dropped.
 */
void
coco_wal_drop_slot_of(Oid dboid)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "cocohooks_%u", dboid);
	if (SearchNamedReplicationSlot(name, true) == NULL)
		return;
	PG_TRY();
	{
		ReplicationSlotDrop(name, true);
		ereport(LOG,
				(errmsg("cocohooks dropped replication slot \"%s\": its database was dropped",
						name)));
	}
	PG_CATCH();
	{
		/* in use after all: whoever holds it drops it */
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
}

/*
 * Drops the replication slots of databases that are gone (not among the
 * ndbs in dboids): a crash during DROP DATABASE may have left one.
 */
void
coco_wal_drop_orphan_slots(const Oid *dboids, int ndbs)
{
	Oid		   *orphans = palloc(sizeof(Oid) * Max(max_replication_slots, 1));
	int			norphans = 0;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];
		unsigned int oid;
		char		tail;
		bool		known = false;

		if (!slot->in_use ||
			sscanf(NameStr(slot->data.name), "cocohooks_%u%c", &oid, &tail) != 1)
			continue;
		for (int j = 0; j < ndbs && !known; j++)
			known = (dboids[j] == (Oid) oid);
		if (!known)
			orphans[norphans++] = (Oid) oid;
	}
	LWLockRelease(ReplicationSlotControlLock);
	for (int i = 0; i < norphans; i++)
		coco_wal_drop_slot_of(orphans[i]);
	pfree(orphans);
}

/*
 * The payload of a record if it is one of our messages in this database,
 * else NULL.
 */
static const char *
our_message(XLogReaderState *r, Size *len, bool *transactional, bool *batch)
{
	xl_logical_message *m;

	if (XLogRecGetRmid(r) != RM_LOGICALMSG_ID ||
		(XLogRecGetInfo(r) & ~XLR_INFO_MASK) != XLOG_LOGICAL_MESSAGE)
		return NULL;
	m = (xl_logical_message *) XLogRecGetData(r);
	if (m->dbId != MyDatabaseId)
		return NULL;
	if (m->prefix_size == sizeof(COCO_WAL_PREFIX) && strcmp(m->message, COCO_WAL_PREFIX) == 0)
		*batch = false;
	else if (m->prefix_size == sizeof(COCO_WAL_BATCH_PREFIX) &&
			 strcmp(m->message, COCO_WAL_BATCH_PREFIX) == 0)
		*batch = true;
	else
		return NULL;
	*len = m->message_size;
	*transactional = m->transactional;
	return m->message + m->prefix_size;
}

static Job *
new_job(XLogRecPtr first, XLogRecPtr end, TimestampTz commit_time,
		const TransactionId *xids, int nxids)
{
	Job		   *job = MemoryContextAllocZero(source_cxt,
											 offsetof(Job, xids) + sizeof(TransactionId) * Max(nxids, 1));

	job->first_lsn = first;
	job->end_lsn = end;
	job->next_lsn = first;
	job->commit_time = commit_time;
	job->nxids = nxids;
	if (nxids > 0)
	{
		memcpy(job->xids, xids, sizeof(TransactionId) * nxids);
		qsort(job->xids, nxids, sizeof(TransactionId), xid_compare);
	}
	dlist_push_tail(&jobs, &job->node);
	njobs++;
	if (first_unread == NULL)
		first_unread = job;
	return job;
}

/*
 * A commit record: the open xids among the transaction and its committed
 * subtransactions become one job.
 */
static void
scan_commit(XLogReaderState *r, TransactionId top, TransactionId *subxacts,
			int nsubxacts, TimestampTz commit_time)
{
	TransactionId *found = NULL;
	int			nfound = 0;
	XLogRecPtr	first = InvalidXLogRecPtr;

	for (int i = -1; i < nsubxacts; i++)
	{
		TransactionId xid = i < 0 ? top : subxacts[i];
		OpenXact   *ox;

		if (!TransactionIdIsValid(xid))
			continue;
		ox = hash_search(open_xacts, &xid, HASH_FIND, NULL);
		if (ox == NULL)
			continue;
		if (found == NULL)
			found = palloc(sizeof(TransactionId) * (nsubxacts + 1));
		found[nfound++] = xid;
		if (XLogRecPtrIsInvalid(first) || ox->first_lsn < first)
			first = ox->first_lsn;
		hash_search(open_xacts, &xid, HASH_REMOVE, NULL);
	}
	if (nfound > 0)
	{
		new_job(first, r->EndRecPtr, commit_time, found, nfound);
		pfree(found);
	}
}

static void
scan_abort(TransactionId top, TransactionId *subxacts, int nsubxacts)
{
	if (hash_get_num_entries(open_xacts) == 0)
		return;
	if (TransactionIdIsValid(top))
		hash_search(open_xacts, &top, HASH_REMOVE, NULL);
	for (int i = 0; i < nsubxacts; i++)
		hash_search(open_xacts, &subxacts[i], HASH_REMOVE, NULL);
}

static void
scan_record(XLogReaderState *r)
{
	Size		len;
	bool		transactional;
	bool		batch;
	uint8		info;

	if (our_message(r, &len, &transactional, &batch) != NULL)
	{
		if (transactional)
		{
			TransactionId xid = XLogRecGetXid(r);
			bool		found;
			OpenXact   *ox = hash_search(open_xacts, &xid, HASH_ENTER, &found);

			if (!found)
				ox->first_lsn = r->ReadRecPtr;
		}
		else
			new_job(r->ReadRecPtr, r->EndRecPtr, GetCurrentTimestamp(), NULL, 0);
		return;
	}
	if (XLogRecGetRmid(r) != RM_XACT_ID)
		return;

	info = XLogRecGetInfo(r) & XLOG_XACT_OPMASK;
	if (info == XLOG_XACT_COMMIT || info == XLOG_XACT_COMMIT_PREPARED)
	{
		xl_xact_parsed_commit parsed;

		if (hash_get_num_entries(open_xacts) == 0)
			return;
		ParseCommitRecord(XLogRecGetInfo(r), (xl_xact_commit *) XLogRecGetData(r), &parsed);
		scan_commit(r, info == XLOG_XACT_COMMIT_PREPARED ? parsed.twophase_xid : XLogRecGetXid(r),
					parsed.subxacts, parsed.nsubxacts, parsed.xact_time);
	}
	else if (info == XLOG_XACT_ABORT || info == XLOG_XACT_ABORT_PREPARED)
	{
		xl_xact_parsed_abort parsed;

		if (hash_get_num_entries(open_xacts) == 0)
			return;
		ParseAbortRecord(XLogRecGetInfo(r), (xl_xact_abort *) XLogRecGetData(r), &parsed);
		scan_abort(info == XLOG_XACT_ABORT_PREPARED ? parsed.twophase_xid : XLogRecGetXid(r),
				   parsed.subxacts, parsed.nsubxacts);
	}
}

/*
 * Open xids with no commit or abort record to come: their transaction was
 * cut short by a crash.  Checked when the scan has reached the end of the
 * WAL; a committed xid whose commit record is not flushed yet stays.
 */
static void
forget_crashed_xacts(void)
{
	HASH_SEQ_STATUS status;
	OpenXact   *ox;

	TimestampTz now = GetCurrentTimestamp();

	if (hash_get_num_entries(open_xacts) == 0 ||
		!TimestampDifferenceExceeds(last_crashed_check, now, CRASHED_CHECK_MS))
		return;
	last_crashed_check = now;
	hash_seq_init(&status, open_xacts);
	while ((ox = hash_seq_search(&status)) != NULL)
	{
		if (!TransactionIdIsInProgress(ox->xid) && !TransactionIdDidCommit(ox->xid))
			hash_search(open_xacts, &ox->xid, HASH_REMOVE, NULL);
	}
}

/* Reads new WAL records with the scan cursor, a bounded number per call. */
void
coco_wal_source_scan(void)
{
	MemoryContext old;
	char	   *errormsg;

	if (!active)
		return;
	old = MemoryContextSwitchTo(source_cxt);
	scan_at_end = false;
	if (!scan_positioned)
	{
		XLogRecPtr	start;

		scan_private.end_of_wal = false;
		start = XLogFindNextRecord(scan_reader, scan_next);
		if (XLogRecPtrIsInvalid(start))
		{
			scan_at_end = true;
			MemoryContextSwitchTo(old);
			return;
		}
		XLogBeginRead(scan_reader, start);
		scan_next = start;
		scan_positioned = true;
	}

	for (int i = 0; i < SCAN_RECORDS_PER_PASS && njobs < MAX_JOBS; i++)
	{
		XLogRecord *rec;

		/*
		 * Nothing flushed past the last record: stop here rather than fail
		 * a read, which makes the reader reopen the segment next time (and
		 * read its first page again) on every pass.
		 */
		if (scan_next >= GetFlushRecPtr(NULL))
		{
			scan_at_end = true;
			forget_crashed_xacts();
			break;
		}
		scan_private.end_of_wal = false;
		rec = XLogReadRecord(scan_reader, &errormsg);
		if (rec == NULL)
		{
			if (!scan_private.end_of_wal && errormsg)
				ereport(WARNING,
						(errmsg("cocohooks could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(scan_next), errormsg)));
			/* read again from the same record next time */
			XLogBeginRead(scan_reader, scan_next);
			scan_at_end = true;
			forget_crashed_xacts();
			break;
		}
		scan_record(scan_reader);
		scan_next = scan_reader->EndRecPtr;
	}
	MemoryContextSwitchTo(old);
}

static bool
job_has_xid(const Job *job, TransactionId xid)
{
	return bsearch(&xid, job->xids, job->nxids, sizeof(TransactionId),
				   xid_compare) != NULL;
}

/*
 * Starts one event of a job read from the WAL (a copy of it: msg is
 * changed), named after lsn unless it is a redelivery, which keeps its
 * name.
 */
static void
start_from_wal(Job *job, CocoEventHeader *msg, uint64 lsn)
{
	if (msg->event_id_len == COCO_WAL_ID_LEN &&
		memcmp(coco_event_id(msg), COCO_WAL_ID_PLACEHOLDER, COCO_WAL_ID_LEN) == 0)
		coco_message_set_wal_id(msg, lsn);
	msg->seq = 0;
	msg->queued_at = job->commit_time;
	job->unfinished++;
	coco_marks_count_queued(1);
	if (job->give_up)
		coco_engine_give_up_event(msg, lsn, job, "given up: WAL retention limit");
	else
		coco_engine_start_event(msg, lsn, job);
}

/*
 * Hands on the events of a batch record from job->next_offset, as long as
 * the engine has room; returns how many it started, and sets *whole when
 * it went through the whole record.  Each is named after
 * its own place in the record (one past its record's start, plus its
 * offset), which no other record's end can be.  Events of a batch were
 * never queued (see pending_events.c).
 */
static int
deliver_batch(Job *job, const char *payload, Size len, int *room, bool *whole)
{
	int			started = 0;

	*whole = true;
	while (job->next_offset + sizeof(CocoEventHeader) <= len)
	{
		const CocoEventHeader *in = (const CocoEventHeader *) (payload + job->next_offset);
		CocoEventHeader *msg;

		if (in->total_len < sizeof(CocoEventHeader) || in->total_len > len - job->next_offset)
			break;				/* damaged: nothing more to read in it */
		if (*room <= 0)
		{
			*whole = false;
			break;
		}
		msg = palloc(in->total_len);
		memcpy(msg, in, in->total_len);
		if (msg->event_id_len > 0)
		{
			start_from_wal(job, msg, deliver_reader->ReadRecPtr + 1 + job->next_offset);
			started++;
			(*room)--;
		}
		pfree(msg);
		job->next_offset += in->total_len;
	}
	return started;
}

/*
 * Hands the job's messages on from where the delivery cursor stopped, as
 * long as the engine has room.  Returns how many events it started.
 */
static int
deliver_job(Job *job, int *room)
{
	char	   *errormsg;
	int			started = 0;

	XLogBeginRead(deliver_reader, job->next_lsn);
	while (*room > 0 && job->next_lsn < job->end_lsn)
	{
		Size		len;
		bool		transactional;
		bool		batch;
		const char *payload;

		deliver_private.end_of_wal = false;
		if (XLogReadRecord(deliver_reader, &errormsg) == NULL)
		{
			if (!deliver_private.end_of_wal && errormsg)
				ereport(WARNING,
						(errmsg("cocohooks could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(job->next_lsn), errormsg)));
			return started;
		}
		payload = our_message(deliver_reader, &len, &transactional, &batch);
		if (payload != NULL && batch && transactional &&
			job_has_xid(job, XLogRecGetXid(deliver_reader)))
		{
			bool		whole;

			started += deliver_batch(job, payload, len, room, &whole);
			if (!whole)
				return started;	/* no room left: this record again next time */
			job->next_offset = 0;
		}
		else if (payload != NULL && !batch &&
			(job->nxids == 0 ? deliver_reader->ReadRecPtr == job->first_lsn :
			 transactional && job_has_xid(job, XLogRecGetXid(deliver_reader))))
		{
			uint64		lsn = deliver_reader->EndRecPtr;
			QueuedEvent *qe = hash_search(queued_events, &lsn, HASH_FIND, NULL);

			if (qe != NULL)
			{
				/* the queue carried it: follow it rather than send it again */
				if (qe->finished)
					hash_search(queued_events, &lsn, HASH_REMOVE, NULL);
				else
				{
					qe->job = job;
					job->unfinished++;
				}
			}
			else if (len >= sizeof(CocoEventHeader))
			{
				CocoEventHeader *msg = palloc(len);

				memcpy(msg, payload, len);
				if (msg->total_len == len && msg->event_id_len > 0)
				{
					/* its copy may still come through the queue: not twice */
					remember_started(lsn);
					start_from_wal(job, msg, lsn);
					started++;
					(*room)--;
				}
				pfree(msg);
			}
		}
		job->next_lsn = deliver_reader->EndRecPtr;
	}
	if (job->next_lsn >= job->end_lsn)
		job->read_all = true;
	return started;
}

/*
 * Hands events of the jobs, oldest first, to the engine while it has room.
 * Returns true if it started any.
 */
bool
coco_wal_source_take(void)
{
	MemoryContext old;
	int			room;
	int			started = 0;

	if (!active || first_unread == NULL || (room = coco_engine_room()) <= 0)
		return false;
	old = MemoryContextSwitchTo(source_cxt);

	/* jobs are handed on in commit order: those before first_unread are read */
	while (first_unread != NULL && room > 0)
	{
		started += deliver_job(first_unread, &room);
		if (!first_unread->read_all)
			break;
		first_unread = dlist_has_next(&jobs, &first_unread->node) ?
			dlist_container(Job, node, dlist_next_node(&jobs, &first_unread->node)) : NULL;
	}
	MemoryContextSwitchTo(old);
	return started > 0;
}

/*
 * An event the delivery cursor started: its copy may still reach the queue
 * (a backend pushes it just after its commit record, which the cursor may
 * read first), and must then not be sent again.
 */
static void
remember_started(uint64 lsn)
{
	StartedEvent *se;
	bool		found;

	se = hash_search(started_events, &lsn, HASH_ENTER, &found);
	se->started = GetCurrentTimestamp();
}

/*
 * True, once, if the delivery cursor already started the event of this
 * queued copy.
 */
bool
coco_wal_started_from_wal(uint64 lsn)
{
	bool		found = false;

	if (active && lsn != 0 && hash_get_num_entries(started_events) > 0)
		hash_search(started_events, &lsn, HASH_REMOVE, &found);
	return found;
}

/*
 * Forgets started events whose queued copy never came (the queue was full):
 * after a minute, or sooner when there are very many.
 */
static void
expire_started(void)
{
	HASH_SEQ_STATUS status;
	StartedEvent *se;
	TimestampTz now = GetCurrentTimestamp();
	int			keep_ms = 60000;

	if (hash_get_num_entries(started_events) == 0 ||
		!TimestampDifferenceExceeds(last_expiry, now, 1000))
		return;
	last_expiry = now;
	if (hash_get_num_entries(started_events) >= MAX_REMEMBERED_QUEUED)
		keep_ms = 1000;
	hash_seq_init(&status, started_events);
	while ((se = hash_seq_search(&status)) != NULL)
	{
		if (TimestampDifferenceExceeds(se->started, now, keep_ms))
			hash_search(started_events, &se->lsn, HASH_REMOVE, NULL);
	}
}

void
coco_wal_note_queued(uint64 lsn)
{
	QueuedEvent *qe;
	bool		found;

	if (!active || lsn == 0)
		return;
	qe = hash_search(queued_events, &lsn, HASH_ENTER, &found);
	if (!found)
	{
		qe->finished = false;
		qe->job = NULL;
	}
}

/*
 * Document order across the two paths.  A backend whose events the queue
 * did not carry says how far they reach in the WAL before it releases its
 * row locks (coco_marks_note_wal_only), so a later event of the same
 * document is queued after that.  Right after popping, the worker notes
 * how far that reaches now; the popped events wait until the delivery
 * cursor has handed on every job that ends there or before, which keeps
 * the engine's start order the commit order.
 */
void
coco_wal_source_note_popped(void)
{
	uint64		lsn;

	if (!active)
		return;
	if (!coco_marks_wal_only(&lsn))
		hold_unknown = true;
	else if (lsn > wal_only_seen)
	{
		wal_only_seen = lsn;
		hold_until = Max(hold_until, lsn);
	}
}

/* True while events popped from the queue must wait (see above). */
bool
coco_wal_source_holds_popped(void)
{
	if (!active)
		return false;
	if (hold_unknown)
	{
		uint64		lsn;

		if (!coco_marks_wal_only(&lsn))
			return true;
		hold_unknown = false;
		wal_only_seen = Max(wal_only_seen, lsn);
		hold_until = Max(hold_until, lsn);
	}
	if (hold_until == 0)
		return false;
	if (scan_positioned && scan_next >= hold_until &&
		(first_unread == NULL || first_unread->end_lsn > hold_until))
	{
		hold_until = 0;
		return false;
	}
	return true;
}

/* True while the WAL holds events not yet handed on, or records not scanned. */
bool
coco_wal_source_behind(void)
{
	return active && (!scan_at_end || first_unread != NULL);
}

/* The queue waits while too many of its events await the delivery cursor. */
bool
coco_wal_source_queue_paused(void)
{
	return active && hash_get_num_entries(queued_events) >= MAX_REMEMBERED_QUEUED;
}

void
coco_wal_event_finished(uint64 lsn, void *source_arg)
{
	QueuedEvent *qe;

	/* a job's memory outlives a stop of the source (see start) */
	if (source_arg != NULL)
	{
		((Job *) source_arg)->unfinished--;
		return;
	}
	if (!active)
		return;
	qe = hash_search(queued_events, &lsn, HASH_FIND, NULL);
	if (qe == NULL)
		return;
	if (qe->job != NULL)
	{
		qe->job->unfinished--;
		hash_search(queued_events, &lsn, HASH_REMOVE, NULL);
	}
	else
		qe->finished = true;
}

/*
 * Past cocohooks.max_wal_retention, the jobs that hold WAL beyond it give up
 * what they have not handed on yet: those events are logged as failed, with
 * their payload.  Events already handed on (or carried by the queue) whose
 * record is past it are given up by the engine instead of being sent or
 * retried (coco_wal_retention_cut); a request in flight finishes as usual;
 * an open transaction holds its WAL until it ends.
 */
static void
give_up_past_retention(XLogRecPtr restart)
{
	XLogRecPtr	insert;
	uint64		limit;
	dlist_iter	iter;

	retention_cut = 0;
	if (cocohooks_max_wal_retention < 0)
		return;
	insert = GetXLogInsertRecPtr();
	limit = (uint64) cocohooks_max_wal_retention * 1024 * 1024;
	if (insert <= restart || insert - restart <= limit)
		return;
	retention_cut = insert - limit;
	dlist_foreach(iter, &jobs)
	{
		Job		   *job = dlist_container(Job, node, iter.cur);

		if (!job->read_all && !job->give_up && insert - job->first_lsn > limit)
		{
			job->give_up = true;
			ereport(LOG,
					(errmsg("cocohooks gives up the undelivered events of a transaction whose WAL at %X/%X is past \"%s\"",
							LSN_FORMAT_ARGS(job->first_lsn), "cocohooks.max_wal_retention"),
					 errdetail("Each is logged in cocohooks.deliveries as failed, with its payload, and can be sent again with cocohooks.redeliver().")));
		}
	}
}

/*
 * While the WAL kept is past cocohooks.max_wal_retention: the position
 * before which an event's record is too old to be sent or retried; else 0.
 */
uint64
coco_wal_retention_cut(void)
{
	return active ? retention_cut : 0;
}

/*
 * Frees finished jobs, reports how far everything is finished, and moves
 * the slot's restart point up to the oldest position still needed.
 */
void
coco_wal_source_advance(void)
{
	XLogRecPtr	restart = InvalidXLogRecPtr;
	XLogRecPtr	done;
	XLogRecPtr	current;
	dlist_mutable_iter miter;
	HASH_SEQ_STATUS status;
	OpenXact   *ox;
	TimestampTz now;

	if (!active || !scan_positioned)
		return;

	/* jobs finish in any order; the oldest bounds what is done */
	dlist_foreach_modify(miter, &jobs)
	{
		Job		   *job = dlist_container(Job, node, miter.cur);

		if (!job->read_all || job->unfinished > 0)
			break;
		dlist_delete(&job->node);
		njobs--;
		pfree(job);
	}
	if (!dlist_is_empty(&jobs))
		done = dlist_head_element(Job, node, &jobs)->end_lsn - 1;
	else
		done = scan_next;
	coco_marks_set_wal_done(done);

	/* the rest looks at every job: now and then is enough */
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_restart_update, now, RESTART_INTERVAL_MS))
		return;
	last_restart_update = now;

	restart = scan_next;
	hash_seq_init(&status, open_xacts);
	while ((ox = hash_seq_search(&status)) != NULL)
		restart = Min(restart, ox->first_lsn);
	dlist_foreach_modify(miter, &jobs)
	{
		Job		   *job = dlist_container(Job, node, miter.cur);

		if (!job->read_all || job->unfinished > 0)
			restart = Min(restart, job->first_lsn);
	}

	give_up_past_retention(restart);
	expire_started();
	coco_marks_set_wal_restart(restart);
	SpinLockAcquire(&MyReplicationSlot->mutex);
	current = MyReplicationSlot->data.restart_lsn;
	if (restart > current)
		MyReplicationSlot->data.restart_lsn = restart;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (restart > current)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotsComputeRequiredLSN();
		if (TimestampDifferenceExceeds(last_slot_save, now, SLOT_SAVE_INTERVAL_MS))
		{
			ReplicationSlotSave();
			last_slot_save = now;
		}
	}

	/* queued events the cursor will never meet: before the restart point */
	if (hash_get_num_entries(queued_events) >= MAX_REMEMBERED_QUEUED / 2)
	{
		QueuedEvent *qe;

		hash_seq_init(&status, queued_events);
		while ((qe = hash_seq_search(&status)) != NULL)
		{
			if (qe->finished && qe->lsn < restart)
				hash_search(queued_events, &qe->lsn, HASH_REMOVE, NULL);
		}
	}
}

/*
 * Milliseconds until the scan should look again: at once while WAL is
 * waiting to be read, else after a short while (pre_* events reach the
 * disk with the WAL writer, and no one wakes us for that), -1 if inactive.
 */
long
coco_wal_source_timeout_ms(void)
{
	if (!active)
		return -1;
	if (!scan_at_end && njobs < MAX_JOBS)
		return 0;
	return IDLE_POLL_MS;
}

/* At an orderly exit: the slot's restart point goes to disk. */
void
coco_wal_source_exit(void)
{
	if (active && MyReplicationSlot != NULL)
	{
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
	}
}
