/*-------------------------------------------------------------------------
 *
 * wal_internal.h
 *	  What the files of the worker's WAL reader share among themselves:
 *	  wal_source.c, wal_scan.c and wal_merge.c.  Nothing outside them
 *	  includes it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_INTERNAL_H
#define COCOHOOKS_WAL_INTERNAL_H

#include "postgres.h"

#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "lib/ilist.h"
#include "utils/hsearch.h"

#include "cocohooks.h"

/* jobs waiting for the delivery cursor: the scan pauses at this many */
#define WAL_MAX_JOBS			20000

/*
 * A job: the messages of one committed transaction (with its committed
 * subtransactions), or one non-transactional message.  wal_scan.c makes
 * it, wal_source.c's delivery cursor reads it again and frees it once
 * every event of it is finished.
 */
typedef struct WalJob
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
} WalJob;

/*
 * The reader's state that more than one file looks at.  Each field names
 * the file(s) that change it; the others only read it.
 */
typedef struct WalSourceState
{
	bool		active;			/* wal_source.c: reading the WAL */
	MemoryContext cxt;			/* wal_source.c: holds all of the below */

	/* the scan cursor (wal_scan.c) */
	XLogRecPtr	scan_next;		/* next record to scan */
	bool		scan_positioned;	/* the reader is at scan_next */
	bool		scan_at_end;	/* the last pass reached the end of the WAL */

	/* jobs, in commit order: wal_scan.c appends, wal_source.c frees */
	dlist_head	jobs;
	int			njobs;

	/*
	 * The oldest job not all handed on: wal_scan.c sets it when a job comes
	 * while none waits, wal_source.c's delivery cursor moves it on.
	 */
	WalJob	   *first_unread;
} WalSourceState;

extern WalSourceState coco_wal_state;

/*
 * A hash table of the reader's, in the WAL source's memory context, keyed
 * by the first keysize bytes of its entries.
 */
static inline HTAB *
coco_wal_hash_create(const char *name, long nelem, Size keysize, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = coco_wal_state.cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* wal_scan.c */
extern XLogReaderState *coco_wal_reader_allocate(ReadLocalXLogPageNoWaitPrivate *private);
extern const char *coco_wal_event_message(XLogReaderState *r, Oid *dboid, Size *len,
										  bool *transactional, bool *batch);
extern const char *coco_wal_our_message(XLogReaderState *r, Size *len,
										bool *transactional, bool *batch);
extern void coco_wal_scan_begin(XLogRecPtr start);
extern void coco_wal_scan_end(void);
extern XLogRecPtr coco_wal_scan_oldest_open(XLogRecPtr bound);
extern bool coco_wal_job_has_xid(const WalJob *job, TransactionId xid);

/* wal_merge.c */
extern void coco_wal_merge_begin(void);
extern bool coco_wal_merge_follow_queued(uint64 lsn, WalJob *job);
extern void coco_wal_merge_remember_started(uint64 lsn);
extern void coco_wal_merge_forget(XLogRecPtr restart);

#endif							/* COCOHOOKS_WAL_INTERNAL_H */
