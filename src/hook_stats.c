/*-------------------------------------------------------------------------
 *
 * hook_stats.c
 *	  Per-hook delivery statistics, in shared memory (cocohooks.hook_stats).
 *
 * A fixed array of cocohooks.max_hook_stats entries, one per hook of any
 * database, each written by its database's worker (and by a backend whose
 * row the hook's filter failed on: filter_errors): counters of
 * deliveries and of attempts by outcome, the last success and failure,
 * the consecutive failures, what the worker holds of the hook (set about
 * once a second) and a histogram of commit-to-receipt latency over two
 * windows of COCO_LATENCY_WINDOW_S, from which readers take percentiles.
 * Backends read and reset entries (stats.c).
 *
 * The counters survive a clean restart: a worker that exits in order
 * writes its database's entries to cocohooks.hook_stats.<database oid> in
 * the data directory, and the next worker to start there reads the file
 * (for hooks that have no entry yet) and removes it.  A crash, or an
 * immediate shutdown, writes nothing, so the next start has none: as with
 * PostgreSQL's own statistics, a crash resets them.
 *
 * Entries of hooks that no longer exist are freed by the worker at its
 * start and, when the array is full, at most every 10 s: a hook that
 * finds none free has no statistics until then, said in the server log.
 *
 * Runs in: the worker (writes), backends (read, reset), the postmaster
 * (set-up).
 *
 * Invariants:
 *	- an entry's identity (dboid, hook_id) changes only under the lock in
 *	  exclusive mode; a hook has at most one entry; only its database's
 *	  worker frees it (a backend may make it, to count a filter's error);
 *	- its figures change only under its spinlock, which readers take to
 *	  copy it whole;
 *	- nothing on a worker's delivery path allocates: an entry is found
 *	  through the worker's own hash of its hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "hook_stats.h"
#include "own_transaction.h"
#include "settings.h"

#define STATS_FILE_FORMAT	"cocohooks.hook_stats.%u"
#define STATS_MAGIC			0x636f6873	/* "cohs" */
#define STATS_VERSION		1
#define GC_INTERVAL_MS		(10 * 1000)
#define HELD_INTERVAL_MS	1000

typedef struct StatsEntry
{
	Oid			dboid;			/* InvalidOid: free */
	slock_t		mutex;
	CocoHookStatsRow row;
} StatsEntry;

typedef struct StatsArea
{
	LWLock	   *lock;
	int			nentries;
	StatsEntry	entries[FLEXIBLE_ARRAY_MEMBER];
} StatsArea;

/* the worker's own map of its hooks' entries, and what it holds of each */
typedef struct LocalHook
{
	int64		hook_id;
	int			index;			/* in area->entries; -1: none could be had */
	int32		held;
	int32		retrying;
	TimestampTz oldest_held;
} LocalHook;

const double coco_latency_bounds_s[COCO_LATENCY_BOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600
};

static StatsArea *area = NULL;
static HTAB *local_hooks = NULL;
static bool gc_wanted = false;
static bool full_reported = false;
static TimestampTz last_gc = 0;
static TimestampTz held_published = 0;
static bool held_pending = false;	/* a count is due once the interval ends */
static bool held_nonzero = false;	/* the last count showed some held */
static bool forgotten = false;	/* our database's figures went: save none */

static Size
area_size(void)
{
	return add_size(offsetof(StatsArea, entries),
					mul_size(sizeof(StatsEntry), cocohooks_max_hook_stats));
}

void
coco_hook_stats_shmem_request(void)
{
	RequestAddinShmemSpace(area_size());
	RequestNamedLWLockTranche("cocohooks hook stats", 1);
}

void
coco_hook_stats_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	area = ShmemInitStruct("cocohooks hook stats", area_size(), &found);
	if (!found)
	{
		area->lock = &(GetNamedLWLockTranche("cocohooks hook stats"))->lock;
		area->nentries = cocohooks_max_hook_stats;
		for (int i = 0; i < area->nentries; i++)
		{
			area->entries[i].dboid = InvalidOid;
			SpinLockInit(&area->entries[i].mutex);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---- the worker ---- */

static void
clear_row(CocoHookStatsRow *row, int64 hook_id)
{
	memset(row, 0, sizeof(*row));
	row->hook_id = hook_id;
	row->stats_reset = GetCurrentTimestamp();
}

/*
 * The entry of hook_id of database dboid: its own if it has one (a
 * backend may have made it), else a free one, set up from *from or
 * zeroed; its index, or -1 if none is free.  Under the lock, exclusive.
 */
static int
take_entry(Oid dboid, int64 hook_id, const CocoHookStatsRow *from)
{
	int			free_index = -1;

	for (int i = 0; i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];

		if (e->dboid == dboid && e->row.hook_id == hook_id)
			return i;
		if (e->dboid == InvalidOid && free_index < 0)
			free_index = i;
	}
	if (free_index >= 0)
	{
		StatsEntry *e = &area->entries[free_index];

		SpinLockAcquire(&e->mutex);
		if (from)
			e->row = *from;
		else
			clear_row(&e->row, hook_id);
		e->row.hook_id = hook_id;
		e->dboid = dboid;
		SpinLockRelease(&e->mutex);
	}
	return free_index;
}

/* what the worker holds of the hook, counted afresh */
static void
clear_held(LocalHook *h)
{
	h->held = 0;
	h->retrying = 0;
	h->oldest_held = 0;
}

static LocalHook *
local_hook(int64 hook_id)
{
	LocalHook  *h;
	bool		found;

	h = hash_search(local_hooks, &hook_id, HASH_ENTER, &found);
	if (!found)
	{
		clear_held(h);
		LWLockAcquire(area->lock, LW_EXCLUSIVE);
		h->index = take_entry(MyDatabaseId, hook_id, NULL);
		LWLockRelease(area->lock);
		if (h->index < 0)
		{
			gc_wanted = true;
			if (!full_reported)
				ereport(LOG,
						(errmsg("cocohooks keeps no statistics for hook %lld: all %d entries are in use",
								(long long) hook_id, area->nentries),
						 errhint("Raise \"%s\" and restart the server.",
								 "cocohooks.max_hook_stats")));
			full_reported = true;
		}
	}
	return h;
}

/* The entry of a hook of ours, made on first use; NULL if none. */
static StatsEntry *
entry_of(int64 hook_id)
{
	LocalHook  *h;

	if (area == NULL || local_hooks == NULL)
		return NULL;
	h = local_hook(hook_id);
	/* none could be had: looked for again once the worker has freed some */
	return h->index < 0 ? NULL : &area->entries[h->index];
}

static void save_stats(int code, Datum arg);
static void free_gone_entries(void *arg);

/*
 * Reads what the previous worker of our database saved at a clean exit,
 * for the hooks that have no entry yet, and removes the file.
 */
static void
load_saved(void)
{
	char		path[MAXPGPATH];
	FILE	   *f;
	uint32		header[3];

	snprintf(path, sizeof(path), STATS_FILE_FORMAT, MyDatabaseId);
	f = AllocateFile(path, PG_BINARY_R);
	if (f == NULL)
		return;
	if (fread(header, sizeof(header), 1, f) == 1 &&
		header[0] == STATS_MAGIC && header[1] == STATS_VERSION &&
		header[2] == sizeof(CocoHookStatsRow))
	{
		CocoHookStatsRow row;

		LWLockAcquire(area->lock, LW_EXCLUSIVE);
		while (fread(&row, sizeof(row), 1, f) == 1)
		{
			bool		found;
			LocalHook  *h = hash_search(local_hooks, &row.hook_id, HASH_ENTER, &found);

			if (found)
				continue;		/* this server's own figures are newer */
			clear_held(h);
			h->index = take_entry(MyDatabaseId, row.hook_id, &row);
			if (h->index < 0)
			{
				hash_search(local_hooks, &row.hook_id, HASH_REMOVE, NULL);
				break;
			}
		}
		LWLockRelease(area->lock);
	}
	else
		ereport(LOG,
				(errmsg("cocohooks ignores the hook statistics in \"%s\": not written by this version",
						path)));
	FreeFile(f);
	if (unlink(path) != 0)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}

/*
 * The worker's start: its map of the entries its database has already
 * (a previous worker since the server started), then those saved at the
 * last clean exit.
 */
void
coco_hook_stats_start(void)
{
	HASHCTL		ctl = {0};

	if (area == NULL)
		return;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(LocalHook);
	ctl.hcxt = TopMemoryContext;
	local_hooks = hash_create("cocohooks hook stats", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	LWLockAcquire(area->lock, LW_SHARED);
	for (int i = 0; i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];

		if (e->dboid == MyDatabaseId)
		{
			LocalHook  *h = hash_search(local_hooks, &e->row.hook_id, HASH_ENTER, NULL);

			h->index = i;
			clear_held(h);
		}
	}
	LWLockRelease(area->lock);
	load_saved();
	/* before any event: entries of hooks gone meanwhile make room */
	last_gc = GetCurrentTimestamp();
	(void) coco_in_own_transaction(free_gone_entries, NULL);
	before_shmem_exit(save_stats, (Datum) 0);
}

void
coco_hook_stats_queued(int64 hook_id)
{
	StatsEntry *e = entry_of(hook_id);

	if (e == NULL)
		return;
	SpinLockAcquire(&e->mutex);
	e->row.queued++;
	SpinLockRelease(&e->mutex);
}

static CocoAttemptOutcome
outcome_of(const CocoHttpResult *r)
{
	if (r->blocked)
		return COCO_OUTCOME_BLOCKED;
	if (r->timed_out)
		return COCO_OUTCOME_TIMEOUT;
	if (r->error != NULL || r->status == 0)
		return COCO_OUTCOME_CONNECTION;
	if (r->status >= 200 && r->status < 300)
		return COCO_OUTCOME_2XX;
	if (r->status >= 400 && r->status < 500)
		return COCO_OUTCOME_4XX;
	if (r->status >= 500 && r->status < 600)
		return COCO_OUTCOME_5XX;
	return COCO_OUTCOME_OTHER_STATUS;
}

/* One attempt, sent, and what it came to. */
void
coco_hook_stats_attempt(int64 hook_id, const CocoHttpResult *r)
{
	StatsEntry *e = entry_of(hook_id);
	CocoAttemptOutcome outcome = outcome_of(r);
	TimestampTz now;

	if (e == NULL)
		return;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&e->mutex);
	e->row.attempts[outcome]++;
	if (outcome == COCO_OUTCOME_2XX)
	{
		e->row.consecutive_failures = 0;
		e->row.last_success = now;
	}
	else
	{
		e->row.consecutive_failures++;
		e->row.last_failure = now;
		if (r->error)
			strlcpy(e->row.last_error, r->error, COCO_STATS_ERROR_LEN);
		else
			snprintf(e->row.last_error, COCO_STATS_ERROR_LEN,
					 "receiver answered with HTTP status %ld", r->status);
	}
	SpinLockRelease(&e->mutex);
}

/* bucket of a latency of ms milliseconds: 2 * log2(ms / 0.5), clamped */
static int
latency_bucket(double ms)
{
	int			b;

	if (ms <= 0.5)
		return 0;
	b = (int) floor(2.0 * log2(ms / 0.5));
	return Min(b, COCO_LATENCY_BUCKETS - 1);
}

/* Moves the windows on to now's; under the entry's spinlock. */
static void
rotate_windows(CocoHookStatsRow *row, TimestampTz now)
{
	int64		window_us = (int64) COCO_LATENCY_WINDOW_S * USECS_PER_SEC;

	if (row->window_start == 0 || now - row->window_start >= 2 * window_us)
	{
		memset(row->latency, 0, sizeof(row->latency));
		row->window_start = now;
	}
	else if (now - row->window_start >= window_us)
	{
		memcpy(row->latency[1], row->latency[0], sizeof(row->latency[0]));
		memset(row->latency[0], 0, sizeof(row->latency[0]));
		row->window_start += window_us;
	}
}

/*
 * A delivery finished: delivered (its latency from the event's commit
 * counted), failed after an attempt, or not attempted at all (dropped).
 */
void
coco_hook_stats_finished(int64 hook_id, bool success, bool attempted,
						 TimestampTz queued_at)
{
	StatsEntry *e = entry_of(hook_id);
	TimestampTz now;

	if (e == NULL)
		return;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&e->mutex);
	if (success)
	{
		double		seconds = Max(now - queued_at, 0) / 1000000.0;
		int			b = 0;

		e->row.delivered++;
		rotate_windows(&e->row, now);
		e->row.latency[0][latency_bucket(seconds * 1000.0)]++;
		while (b < COCO_LATENCY_BOUNDS && seconds > coco_latency_bounds_s[b])
			b++;
		e->row.latency_total[b]++;
		e->row.latency_sum_s += seconds;
	}
	else if (attempted)
		e->row.failed++;
	else
		e->row.dropped++;
	SpinLockRelease(&e->mutex);
}

/*
 * Whether it is time to count what the worker holds again (about once a
 * second, or at once when it holds none, if it held some); if so, the counts start afresh and the engine calls
 * coco_hook_stats_held() for each delivery it holds, then
 * coco_hook_stats_held_publish().
 */
bool
coco_hook_stats_held_due(bool none_held)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS seq;
	LocalHook  *h;

	if (local_hooks == NULL)
		return false;
	if (none_held && !held_nonzero)
	{
		held_pending = false;	/* shown already */
		return false;
	}
	if (!none_held && !TimestampDifferenceExceeds(held_published, now, HELD_INTERVAL_MS))
	{
		/* what changed since the last count is shown at the next */
		held_pending = true;
		return false;
	}
	held_published = now;
	held_pending = false;
	hash_seq_init(&seq, local_hooks);
	while ((h = hash_seq_search(&seq)) != NULL)
	{
		clear_held(h);
	}
	return true;
}

/*
 * Milliseconds until the next count of what the worker holds is due, if
 * one is pending (so that an idle worker still shows what changed last);
 * -1 if none.
 */
long
coco_hook_stats_timeout_ms(void)
{
	if (!held_pending)
		return -1;
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
											   TimestampTzPlusMilliseconds(held_published,
																		   HELD_INTERVAL_MS)), 0);
}

void
coco_hook_stats_held(int64 hook_id, TimestampTz queued_at, bool retrying)
{
	LocalHook  *h = hash_search(local_hooks, &hook_id, HASH_FIND, NULL);

	if (h == NULL)
		h = local_hook(hook_id);
	h->held++;
	if (retrying)
		h->retrying++;
	if (h->oldest_held == 0 || queued_at < h->oldest_held)
		h->oldest_held = queued_at;
}

void
coco_hook_stats_held_publish(void)
{
	HASH_SEQ_STATUS seq;
	LocalHook  *h;

	held_nonzero = false;
	hash_seq_init(&seq, local_hooks);
	while ((h = hash_seq_search(&seq)) != NULL)
	{
		StatsEntry *e;

		held_nonzero |= (h->held > 0);
		if (h->index < 0)
			continue;
		e = &area->entries[h->index];
		SpinLockAcquire(&e->mutex);
		e->row.held = h->held;
		e->row.retrying = h->retrying;
		e->row.oldest_held = h->oldest_held;
		SpinLockRelease(&e->mutex);
	}
}

/* In a transaction: frees the entries of our hooks the catalog has not. */
static void
free_gone_entries(void *arg)
{
	HASH_SEQ_STATUS seq;
	LocalHook  *h;
	HTAB	   *alive;
	HASHCTL		ctl = {0};
	MemoryContext cxt = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT id FROM cocohooks.hooks", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(int64);
	ctl.hcxt = cxt;			/* outlives SPI_finish() */
	alive = hash_create("cocohooks hooks alive", Max(SPI_processed, 16), &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));

		hash_search(alive, &id, HASH_ENTER, NULL);
	}
	SPI_finish();

	LWLockAcquire(area->lock, LW_EXCLUSIVE);
	/* entries a backend made are ours too */
	for (int i = 0; i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];

		if (e->dboid == MyDatabaseId &&
			!hash_search(alive, &e->row.hook_id, HASH_FIND, NULL))
			e->dboid = InvalidOid;
	}
	hash_seq_init(&seq, local_hooks);
	while ((h = hash_seq_search(&seq)) != NULL)
	{
		/* a hook without an entry looks for one again */
		if (h->index >= 0 && area->entries[h->index].dboid == MyDatabaseId)
			continue;
		hash_search(local_hooks, &h->hook_id, HASH_REMOVE, NULL);
	}
	LWLockRelease(area->lock);
	hash_destroy(alive);
}

/*
 * Outside any transaction: when the array was full, frees the entries of
 * hooks that are gone, at most every GC_INTERVAL_MS.
 */
void
coco_hook_stats_maintain(void)
{
	TimestampTz now;

	if (!gc_wanted || local_hooks == NULL)
		return;
	now = GetCurrentTimestamp();
	if (last_gc != 0 && !TimestampDifferenceExceeds(last_gc, now, GC_INTERVAL_MS))
		return;
	last_gc = now;
	gc_wanted = false;
	full_reported = false;
	(void) coco_in_own_transaction(free_gone_entries, NULL);
}

/*
 * before_shmem_exit callback: on an orderly exit, our database's entries
 * go to the file the next worker reads.  Never raises an error.
 */
static void
save_stats(int code, Datum arg)
{
	char		path[MAXPGPATH];
	char		tmp[MAXPGPATH];
	uint32		header[3] = {STATS_MAGIC, STATS_VERSION, sizeof(CocoHookStatsRow)};
	FILE	   *f;
	bool		ok;

	if (forgotten)
		return;
	snprintf(path, sizeof(path), STATS_FILE_FORMAT, MyDatabaseId);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
		return;
	}
	ok = fwrite(header, sizeof(header), 1, f) == 1;
	for (int i = 0; ok && i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];
		CocoHookStatsRow row;

		if (e->dboid != MyDatabaseId)
			continue;
		SpinLockAcquire(&e->mutex);
		row = e->row;
		SpinLockRelease(&e->mutex);
		/* what it holds is the next worker's to count */
		row.held = 0;
		row.retrying = 0;
		row.oldest_held = 0;
		ok = fwrite(&row, sizeof(row), 1, f) == 1;
	}
	if (FreeFile(f) != 0)
		ok = false;
	if (!ok || rename(tmp, path) != 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
		(void) unlink(tmp);
	}
}

/*
 * The extension or the database dboid is gone: its entries are freed and
 * its saved file removed (a worker of it saves nothing at its exit).
 */
void
coco_hook_stats_forget(Oid dboid)
{
	char		path[MAXPGPATH];

	if (area == NULL)
		return;
	if (dboid == MyDatabaseId)
		forgotten = true;
	LWLockAcquire(area->lock, LW_EXCLUSIVE);
	for (int i = 0; i < area->nentries; i++)
		if (area->entries[i].dboid == dboid)
			area->entries[i].dboid = InvalidOid;
	LWLockRelease(area->lock);
	snprintf(path, sizeof(path), STATS_FILE_FORMAT, dboid);
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}

/* ---- backends ---- */

/* Copies of the entries of database dboid (palloc'd), and how many. */
CocoHookStatsRow *
coco_hook_stats_snapshot(Oid dboid, int *n)
{
	CocoHookStatsRow *rows;
	int			count = 0;

	*n = 0;
	if (area == NULL || area->nentries == 0)
		return NULL;
	rows = palloc(sizeof(CocoHookStatsRow) * area->nentries);
	LWLockAcquire(area->lock, LW_SHARED);
	for (int i = 0; i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];

		if (e->dboid != dboid)
			continue;
		SpinLockAcquire(&e->mutex);
		rows[count++] = e->row;
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(area->lock);
	*n = count;
	return rows;
}

/*
 * A backend could not evaluate the hook's filter on a row (row_filter.c):
 * counted in the hook's entry, made here if the worker has none yet.
 * Only on that error's path: the lock is taken exclusive.
 */
void
coco_hook_stats_filter_error(int64 hook_id)
{
	int			i;

	if (area == NULL || area->nentries == 0)
		return;
	LWLockAcquire(area->lock, LW_EXCLUSIVE);
	i = take_entry(MyDatabaseId, hook_id, NULL);
	if (i >= 0)
	{
		StatsEntry *e = &area->entries[i];

		SpinLockAcquire(&e->mutex);
		e->row.filter_errors++;
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(area->lock);
}

/* Zeroes the figures of a hook of database dboid (its gauges stay). */
void
coco_hook_stats_reset(Oid dboid, int64 hook_id)
{
	if (area == NULL)
		return;
	LWLockAcquire(area->lock, LW_SHARED);
	for (int i = 0; i < area->nentries; i++)
	{
		StatsEntry *e = &area->entries[i];

		if (e->dboid != dboid || e->row.hook_id != hook_id)
			continue;
		SpinLockAcquire(&e->mutex);
		{
			int32		held = e->row.held;
			int32		retrying = e->row.retrying;
			TimestampTz oldest = e->row.oldest_held;

			clear_row(&e->row, hook_id);
			e->row.held = held;
			e->row.retrying = retrying;
			e->row.oldest_held = oldest;
		}
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(area->lock);
}

/*
 * The q-quantile (0 < q < 1) of the latencies in the windows still recent
 * at now, in ms (interpolated within its bucket); -1 if there are none.
 */
double
coco_latency_percentile(const CocoHookStatsRow *row, double q, TimestampTz now)
{
	int64		window_us = (int64) COCO_LATENCY_WINDOW_S * USECS_PER_SEC;
	uint64		counts[COCO_LATENCY_BUCKETS] = {0};
	uint64		total = 0;
	double		rank;
	uint64		below = 0;

	if (row->window_start == 0 || now - row->window_start >= 2 * window_us)
		return -1;
	for (int b = 0; b < COCO_LATENCY_BUCKETS; b++)
	{
		counts[b] = row->latency[0][b];
		/* the window before the current one, while it is still recent */
		if (now - row->window_start < window_us)
			counts[b] += row->latency[1][b];
		total += counts[b];
	}
	if (total == 0)
		return -1;
	rank = q * total;
	for (int b = 0; b < COCO_LATENCY_BUCKETS; b++)
	{
		if (counts[b] > 0 && below + counts[b] >= rank)
		{
			double		frac = (rank - below) / counts[b];

			/* geometric within [0.5 * 2^(b/2), 0.5 * 2^((b+1)/2)) */
			return b == 0 ? 0.5 * frac : 0.5 * pow(2.0, (b + frac) / 2.0);
		}
		below += counts[b];
	}
	return 0.5 * pow(2.0, COCO_LATENCY_BUCKETS / 2.0);
}
