/*-------------------------------------------------------------------------
 *
 * wal_progress.c
 *	  Progress marks: each database's restart point, written into the WAL
 *	  so that a standby keeps what a promoted server needs.
 *
 * The replication slot that keeps a database's events in the WAL
 * (wal_slot.c) lives on the primary only; a standby has none of it.  So
 * the worker writes its restart point into the WAL as a small
 * non-transactional logical message, and the standby (wal_standby.c) keeps
 * a slot of the same name at the last mark it replayed.  Promoted, the
 * standby's worker takes that slot over as after a crash, and reads every
 * event the old primary had not finished.
 *
 * A mark goes out at most once a second, only when the restart point moved
 * and events finished since the last one (or the restart point moved far:
 * MARK_DISTANCE), so that an idle server writes none (marks of two
 * databases must not move each other's restart points for ever); one goes
 * out when the worker starts and stops, and one with no position when a
 * slot is dropped.
 *
 * Runs in: the worker (marks), any process that drops a slot (the
 * backend of DROP EXTENSION, the launcher), the standby's follower
 * (reading them).
 *
 * Invariants: a mark names its database and a position at or before every
 * event its worker has not finished; marks of a database never go back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/message.h"

#include "pg_compat.h"
#include "wal_progress.h"

#define COCO_WAL_PROGRESS_PREFIX	"cocohooks.progress"
#define MARK_INTERVAL_MS			1000
#define MARK_DISTANCE				(16 * 1024 * 1024)

/* the message; restart is InvalidXLogRecPtr when the slot was dropped */
typedef struct WalProgressMark
{
	uint32		version;
	Oid			dboid;
	uint64		restart;
} WalProgressMark;

#define MARK_VERSION	1

static XLogRecPtr noted = InvalidXLogRecPtr;	/* the last restart point noted */
static XLogRecPtr marked = InvalidXLogRecPtr;	/* the last one written */
static bool finished_since_mark = true; /* the first note writes a mark */
static TimestampTz last_mark = 0;
static XLogRecPtr wanted = InvalidXLogRecPtr;	/* coco_wal_progress_want */

/* Writes a mark; returns where its record ends (Invalid if none written). */
static XLogRecPtr
write_mark(Oid dboid, XLogRecPtr restart)
{
	WalProgressMark mark = {.version = MARK_VERSION,.dboid = dboid,.restart = restart};

	if (RecoveryInProgress())
		return InvalidXLogRecPtr;
	return coco_log_logical_message(COCO_WAL_PROGRESS_PREFIX, (const char *) &mark,
									sizeof(mark), false);
}

/*
 * The worker's restart point is restart now; events_finished says whether
 * events finished since the last call.  Returns where the mark it wrote
 * ends, with *start where it begins; Invalid if it wrote none.
 */
XLogRecPtr
coco_wal_progress_note(XLogRecPtr restart, bool events_finished, TimestampTz now,
					   XLogRecPtr *start)
{
	XLogRecPtr	end;

	noted = Max(noted, restart);
	finished_since_mark |= events_finished;
	if (noted <= marked ||
		!TimestampDifferenceExceeds(last_mark, now, MARK_INTERVAL_MS))
		return InvalidXLogRecPtr;
	if (!finished_since_mark && noted - marked < MARK_DISTANCE &&
		!(wanted > marked && noted >= wanted))
		return InvalidXLogRecPtr;
	end = write_mark(MyDatabaseId, noted);
	*start = ProcLastRecPtr;
	marked = noted;
	finished_since_mark = false;
	last_mark = now;
	return end;
}

/* At the worker's orderly exit: the last restart point noted goes out. */
void
coco_wal_progress_flush(void)
{
	if (noted > marked)
	{
		(void) write_mark(MyDatabaseId, noted);
		marked = noted;
	}
}

/* The restart point of the last mark written: where a promoted standby reads from. */
XLogRecPtr
coco_wal_progress_marked(void)
{
	return marked;
}

/*
 * Someone waits for a mark at lsn or past it (settings_retirement.c): the
 * next note past it writes one, even with no event finished since the last.
 */
void
coco_wal_progress_want(XLogRecPtr lsn)
{
	wanted = Max(wanted, lsn);
}

/* The slot of database dboid was dropped: so should the standby's be. */
void
coco_wal_progress_slot_dropped(Oid dboid)
{
	(void) write_mark(dboid, InvalidXLogRecPtr);
	if (dboid == MyDatabaseId)
	{
		noted = marked = InvalidXLogRecPtr;
		finished_since_mark = true;
	}
}

/* Whether r is a progress mark; if so, sets *dboid and *restart. */
bool
coco_wal_progress_read(XLogReaderState *r, Oid *dboid, XLogRecPtr *restart)
{
	xl_logical_message *m;
	WalProgressMark mark;

	if (XLogRecGetRmid(r) != RM_LOGICALMSG_ID ||
		(XLogRecGetInfo(r) & ~XLR_INFO_MASK) != XLOG_LOGICAL_MESSAGE)
		return false;
	m = (xl_logical_message *) XLogRecGetData(r);
	if (m->prefix_size != sizeof(COCO_WAL_PROGRESS_PREFIX) ||
		strcmp(m->message, COCO_WAL_PROGRESS_PREFIX) != 0 ||
		m->message_size != sizeof(mark))
		return false;
	memcpy(&mark, m->message + m->prefix_size, sizeof(mark));
	if (mark.version != MARK_VERSION)
		return false;
	*dboid = mark.dboid;
	*restart = (XLogRecPtr) mark.restart;
	return true;
}
