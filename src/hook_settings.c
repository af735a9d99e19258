/*-------------------------------------------------------------------------
 *
 * hook_settings.c
 *	  The worker's copy of the hooks' settings, read from cocohooks.hooks
 *	  and cocohooks.hook_versions.
 *
 * A message names each of its hooks by id and settings version (a
 * CocoHookRef, cocohooks.h); the delivery's URL, headers, timeout, retries
 * and ordering are that version's, read here: from cocohooks.hooks while it
 * is the hook's current one, from cocohooks.hook_versions once the hook was
 * changed or unregistered (the catalog keeps it there while events may
 * name it: settings_retirement.c).  A version never changes, so once read
 * it is kept as a target (CocoHookTarget), shared by the deliveries that
 * use it, until no delivery uses it and the catalog no longer has it.
 * Messages that 0.1 and 0.2 wrote carry their hooks' settings whole; their
 * targets point into the message.
 *
 * What is not versioned is read as it is now: each hook's retry_for (when
 * its retries stop), its pace (max_per_second and max_concurrent, which
 * hook_pace.c keeps, for waiting deliveries too), and its secrets (handed
 * to signing_keys.c); those of an unregistered hook from its last settings
 * (which hold no pace: hook_pace.c keeps the one it had).  One read of the
 * catalog serves them all, and the clocks of failing hooks are checked
 * against cocohooks.hook_failing in the same transaction (failing_hooks.c).
 *
 * A transaction that changes cocohooks.hooks bumps the hooks generation
 * (signing_keys.c's commit callback, worker_marks.c); the next refresh
 * sees it and reads the catalog again, as it does at the latest every few
 * seconds (a prepared transaction commits elsewhere, without our
 * callback), and at once when an event names a version it has not read.
 * Lookups are hash probes: no catalog access per attempt.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- the catalog is read only between transactions, in a short one of
 *	  its own; a failed read is reported, not raised, and what the last
 *	  successful read found stays in force;
 *	- a target handed out stays valid until released, whatever is read
 *	  meanwhile;
 *	- an event naming settings the catalog does not have gets a target
 *	  marked missing: its delivery fails, logged with its payload;
 *	- a hook missing from the catalog, unregistered long ago, retries for a
 *	  day.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "failing_hooks.h"
#include "header_object.h"
#include "hook_settings.h"
#include "hooks_catalog.h"
#include "own_transaction.h"
#include "pg_compat.h"
#include "signing_keys.h"
#include "worker_marks.h"

#define MAX_AGE_MS	5000

/* an event naming a version not read yet reads the catalog, at most this often */
#define MISS_READ_MS	1000

/* the retry_for of an unregistered hook's last events: register_hook's default */
#define UNREGISTERED_RETRY_FOR_MS	((int64) 24 * 3600 * 1000)

/* a retry_for longer than this (about 100 years) counts as none */
#define RETRY_FOR_MAX_MS	((int64) 100 * 365 * 24 * 3600 * 1000)

typedef struct HookSettings
{
	int64		hook_id;		/* hash key */
	int64		retry_for_ms;	/* -1: no time limit */
	double		max_per_second; /* 0: no limit */
	int32		max_concurrent; /* 0: no limit */
	bool		registered;		/* in cocohooks.hooks, not only in its history */
} HookSettings;

/* a version's target, shared */
typedef struct VersionTarget
{
	CocoSettingsKey key;		/* hash key */
	CocoHookTarget target;
	int			refs;			/* deliveries using it */
	bool		in_catalog;		/* found by the last read */
} VersionTarget;

/* a target of one delivery's own: freed when released */
typedef struct OwnTarget
{
	CocoHookTarget target;		/* first: released by its address */
	VersionTarget *shared;		/* whose strings it uses, or NULL */
} OwnTarget;

/* what the last successful read found; replaced whole by the next */
static HTAB *settings = NULL;
static CocoSettingsKey *retired = NULL;
static int	nretired = 0;
static MemoryContext settings_cxt = NULL;

/* targets outlive reads: their own context */
static HTAB *targets = NULL;
static MemoryContext targets_cxt = NULL;

static bool loaded = false;
static uint32 loaded_generation = 0;
static TimestampTz loaded_at = 0;
static TimestampTz miss_read_at = 0;

/* An interval in milliseconds, a month counted as 30 days; -1 if not finite. */
static int64
interval_ms(const Interval *i)
{
	double		ms;

	if (INTERVAL_NOT_FINITE(i))
		return -1;
	ms = (double) i->time / 1000.0 +
		((double) i->month * DAYS_PER_MONTH + (double) i->day) * SECS_PER_DAY * 1000.0;
	if (ms > (double) RETRY_FOR_MAX_MS)
		return -1;
	return Max((int64) ms, 0);
}

static void
init_targets(void)
{
	HASHCTL		ctl;

	if (targets != NULL)
		return;
	targets_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks hook targets",
										ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(CocoSettingsKey);
	ctl.entrysize = sizeof(VersionTarget);
	ctl.hcxt = targets_cxt;
	targets = hash_create("cocohooks hook targets", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static const char *
text_attr(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		value = coco_hooks_attr(tup, desc, attnum, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/*
 * The target of one settings version, read from a row of cocohooks.hooks
 * or cocohooks.hook_versions (the column numbers of the one it is): made
 * the first time, found as it was after that.
 */
static void
note_version(int64 hook_id, uint32 version, HeapTuple tup, TupleDesc desc,
			 int url_att, int headers_att, int timeout_att, int retries_att,
			 int ordering_att, int batch_size_att, int batch_wait_att)
{
	CocoSettingsKey key = {.hook_id = hook_id,.settings_version = version};
	bool		found;
	VersionTarget *e = hash_search(targets, &key, HASH_ENTER, &found);

	e->in_catalog = true;
	if (!found)
	{
		CocoHookTarget *t = &e->target;
		const char *url = text_attr(tup, desc, url_att);
		const char *ordering = text_attr(tup, desc, ordering_att);
		StringInfoData lines;
		bool		isnull;
		Datum		value;

		memset(t, 0, sizeof(*t));
		e->refs = 0;
		t->hook_id = hook_id;
		t->settings_version = version;
		/* only what the target keeps goes into targets_cxt */
		t->url = MemoryContextStrdup(targets_cxt, url ? url : "");
		t->url_len = strlen(t->url);
		initStringInfo(&lines);
		value = coco_hooks_attr(tup, desc, headers_att, &isnull);
		if (!isnull)
			coco_headers_to_lines(DatumGetJsonbP(value), &lines);
		t->headers = MemoryContextAlloc(targets_cxt, lines.len + 1);
		memcpy((char *) t->headers, lines.data, lines.len + 1);
		t->headers_len = lines.len;
		value = coco_hooks_attr(tup, desc, timeout_att, &isnull);
		t->timeout_ms = isnull ? 15000 : DatumGetInt32(value);
		value = coco_hooks_attr(tup, desc, retries_att, &isnull);
		t->max_retries = isnull ? COCO_RETRIES_UNLIMITED : DatumGetInt32(value);
		t->flags = (ordering && strcmp(ordering, "document") == 0) ? COCO_SPEC_ORDERED : 0;
		/* a catalog before batches, or a NULL a superuser wrote: one at a time */
		value = coco_hooks_attr(tup, desc, batch_size_att, &isnull);
		t->batch_size = isnull ? 1 : Max(DatumGetInt32(value), 1);
		value = coco_hooks_attr(tup, desc, batch_wait_att, &isnull);
		t->batch_wait_ms = isnull ? 0 :
			(int32) Min(Max(interval_ms(DatumGetIntervalP(value)), 0), 10000);
	}
}

static void
free_entry(VersionTarget *e)
{
	pfree((char *) e->target.url);
	pfree((char *) e->target.headers);
	hash_search(targets, &e->key, HASH_REMOVE, NULL);
}

/* Reads the hooks' secrets, retry_for and pace; inside a transaction. */
static void
read_hooks(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	HeapTuple	tup;

	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		bool		isnull;
		Datum		value;
		int64		id;
		HookSettings *h;
		TimestampTz until;

		value = coco_hooks_attr(tup, desc, Anum_hooks_id, &isnull);
		if (isnull)
			continue;
		id = DatumGetInt64(value);
		h = hash_search(settings, &id, HASH_ENTER, NULL);
		value = coco_hooks_attr(tup, desc, Anum_hooks_retry_for, &isnull);
		h->retry_for_ms = isnull ? -1 : interval_ms(DatumGetIntervalP(value));
		value = coco_hooks_attr(tup, desc, Anum_hooks_max_per_second, &isnull);
		h->max_per_second = isnull ? 0 : Max((double) DatumGetFloat4(value), 0);
		value = coco_hooks_attr(tup, desc, Anum_hooks_max_concurrent, &isnull);
		h->max_concurrent = isnull ? 0 : Max(DatumGetInt32(value), 0);
		h->registered = true;
		value = coco_hooks_attr(tup, desc, Anum_hooks_previous_secret_until, &isnull);
		until = isnull ? 0 : DatumGetTimestampTz(value);
		coco_signing_keys_load(id, text_attr(tup, desc, Anum_hooks_secret),
							   text_attr(tup, desc, Anum_hooks_previous_secret), until);
		value = coco_hooks_attr(tup, desc, Anum_hooks_settings_version, &isnull);
		if (!isnull)
			note_version(id, (uint32) DatumGetInt32(value), tup, desc,
						 Anum_hooks_url, Anum_hooks_headers, Anum_hooks_timeout_ms,
						 Anum_hooks_max_retries, Anum_hooks_ordering,
						 Anum_hooks_batch_size, Anum_hooks_batch_wait);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * Reads the retired versions, after the hooks: an unregistered hook's
 * last settings give its secrets and retry_for.
 */
static void
read_versions(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	HeapTuple	tup;
	int			max = 16;

	retired = MemoryContextAlloc(settings_cxt, sizeof(CocoSettingsKey) * max);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		bool		isnull;
		bool		vnull;
		int64		id = DatumGetInt64(coco_hooks_attr(tup, desc, Anum_versions_hook_id, &isnull));
		Datum		version = coco_hooks_attr(tup, desc, Anum_versions_settings_version, &vnull);
		Datum		value;

		if (isnull || vnull)
			continue;
		note_version(id, (uint32) DatumGetInt32(version), tup, desc,
					 Anum_versions_url, Anum_versions_headers, Anum_versions_timeout_ms,
					 Anum_versions_max_retries, Anum_versions_ordering,
					 Anum_versions_batch_size, Anum_versions_batch_wait);
		if (nretired == max)
		{
			max *= 2;
			retired = repalloc(retired, sizeof(CocoSettingsKey) * max);
		}
		retired[nretired].hook_id = id;
		retired[nretired].settings_version = (uint32) DatumGetInt32(version);
		retired[nretired].pad = 0;
		nretired++;

		value = coco_hooks_attr(tup, desc, Anum_versions_unregistered, &isnull);
		if (!isnull && DatumGetBool(value))
		{
			bool		found;
			HookSettings *h = hash_search(settings, &id, HASH_ENTER, &found);
			TimestampTz until;

			if (!found)
			{
				value = coco_hooks_attr(tup, desc, Anum_versions_retry_for, &isnull);
				h->retry_for_ms = isnull ? -1 : interval_ms(DatumGetIntervalP(value));
				h->max_per_second = 0;
				h->max_concurrent = 0;
				h->registered = false;
			}
			value = coco_hooks_attr(tup, desc, Anum_versions_previous_secret_until, &isnull);
			until = isnull ? 0 : DatumGetTimestampTz(value);
			coco_signing_keys_load(id, text_attr(tup, desc, Anum_versions_secret),
								   text_attr(tup, desc, Anum_versions_previous_secret),
								   until);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Reads the catalog into settings_cxt and the targets; inside a transaction. */
static void
load_settings(void *arg)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);
	Oid			hooks = OidIsValid(nsp) ? get_relname_relid("hooks", nsp) : InvalidOid;
	Oid			versions = OidIsValid(nsp) ? get_relname_relid("hook_versions", nsp) : InvalidOid;
	HASHCTL		ctl;
	HASH_SEQ_STATUS seq;
	VersionTarget *e;
	MemoryContext old = MemoryContextSwitchTo(settings_cxt);

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(HookSettings);
	ctl.hcxt = settings_cxt;
	settings = hash_create("cocohooks hook settings", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	retired = NULL;
	nretired = 0;
	MemoryContextSwitchTo(old);

	hash_seq_init(&seq, targets);
	while ((e = hash_seq_search(&seq)) != NULL)
		e->in_catalog = false;
	if (OidIsValid(hooks))
		read_hooks(hooks);
	if (OidIsValid(versions))
		read_versions(versions);

	coco_failing_reconcile();
}

/* Reads the catalog in a transaction of its own; outside any. */
static void
read_catalog(void)
{
	MemoryContext previous = settings_cxt;
	HTAB	   *previous_settings = settings;
	CocoSettingsKey *previous_retired = retired;
	int			previous_nretired = nretired;

	init_targets();
	settings_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks hook settings",
										 ALLOCSET_SMALL_SIZES);
	coco_signing_keys_begin();
	if (!coco_in_own_transaction(load_settings, NULL))
	{
		/* what the last read found stays; try again later */
		coco_signing_keys_end(false);
		MemoryContextDelete(settings_cxt);
		settings_cxt = previous;
		settings = previous_settings;
		retired = previous_retired;
		nretired = previous_nretired;
		return;
	}
	coco_signing_keys_end(true);
	if (previous)
		MemoryContextDelete(previous);
	loaded = true;

	/* versions gone from the catalog that no delivery uses */
	{
		HASH_SEQ_STATUS seq;
		VersionTarget *e;

		hash_seq_init(&seq, targets);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (!e->in_catalog && e->refs == 0)
				free_entry(e);
	}
}

/*
 * Reads the hooks again if a change committed since, or if what we have
 * is a few seconds old.  Call in the worker, outside any transaction.
 */
void
coco_hook_settings_refresh(void)
{
	uint32		generation = coco_marks_hooks_generation();
	TimestampTz now = GetCurrentTimestamp();

	if (loaded && generation == loaded_generation &&
		!TimestampDifferenceExceeds(loaded_at, now, MAX_AGE_MS))
		return;
	if (IsTransactionState())
		return;					/* only ever between transactions */
	read_catalog();
	loaded_generation = generation;
	loaded_at = now;
}

/*
 * The hook's retry_for in milliseconds as of the last read; -1 if it has
 * none (NULL, or the catalog was never read).  A hook the catalog no
 * longer has at all retries its last events for the default day: nothing
 * could disable it, and its retries would never end.
 */
int64
coco_hook_retry_for_ms(int64 hook_id)
{
	HookSettings *h;

	if (settings == NULL)
		return -1;
	h = hash_search(settings, &hook_id, HASH_FIND, NULL);
	return h ? h->retry_for_ms : UNREGISTERED_RETRY_FOR_MS;
}

/*
 * The hook's pace as of the last read: requests started per second and
 * requests in flight, each 0 when it has no limit.  Returns false, with
 * no limits, if cocohooks.hooks has no such hook (unregistered: its
 * history keeps no pace) or was never read.
 */
bool
coco_hook_pace_limits(int64 hook_id, double *max_per_second, int *max_concurrent)
{
	HookSettings *h = settings ? hash_search(settings, &hook_id, HASH_FIND, NULL) : NULL;

	if (h && !h->registered)
		h = NULL;
	*max_per_second = h ? h->max_per_second : 0;
	*max_concurrent = h ? h->max_concurrent : 0;
	return h != NULL;
}

static CocoHookTarget *
own_target(VersionTarget *shared)
{
	OwnTarget  *own = MemoryContextAllocZero(targets_cxt, sizeof(OwnTarget));

	if (shared)
	{
		own->target = shared->target;
		own->shared = shared;
		shared->refs++;
	}
	return &own->target;
}

/*
 * The target of one hook of a message (spec points into it): release it
 * with coco_hook_target_release once its delivery is done.  A 0.1/0.2
 * spec's target points into the spec, so the message must outlive it.
 */
const CocoHookTarget *
coco_hook_target_get(const CocoHookSpec *spec)
{
	const CocoHookRef *ref = (const CocoHookRef *) spec;
	CocoSettingsKey key = {0};
	VersionTarget *e;
	CocoHookTarget *t;

	init_targets();
	if (!coco_spec_is_ref(spec))
	{
		t = own_target(NULL);
		t->hook_id = spec->hook_id;
		t->timeout_ms = spec->timeout_ms;
		t->max_retries = spec->max_retries;
		t->flags = spec->flags;
		t->url = coco_spec_url(spec);
		t->url_len = spec->url_len;
		t->headers = coco_spec_headers(spec);
		t->headers_len = spec->headers_len;
		t->key = coco_spec_key(spec);
		t->key_len = spec->key_len;
		return t;
	}

	key.hook_id = ref->hook_id;
	key.settings_version = ref->settings_version & COCO_REF_VERSION_MASK;
	e = hash_search(targets, &key, HASH_FIND, NULL);
	if (e == NULL && !IsTransactionState() &&
		TimestampDifferenceExceeds(miss_read_at, GetCurrentTimestamp(), MISS_READ_MS))
	{
		/* changed since we last looked */
		miss_read_at = GetCurrentTimestamp();
		read_catalog();
		e = hash_search(targets, &key, HASH_FIND, NULL);
	}
	if (e == NULL)
	{
		t = own_target(NULL);
		t->hook_id = key.hook_id;
		t->settings_version = key.settings_version;
		t->missing = true;
		t->url = "";
		t->headers = "";
		return t;
	}
	if (ref->settings_version & COCO_REF_UNORDERED)
	{
		t = own_target(e);
		t->flags &= ~COCO_SPEC_ORDERED;
		return t;
	}
	e->refs++;
	return &e->target;
}

/* A delivery is done with its target. */
void
coco_hook_target_release(const CocoHookTarget *target)
{
	VersionTarget *e;
	CocoSettingsKey key = {0};

	key.hook_id = target->hook_id;
	key.settings_version = target->settings_version;
	e = target->settings_version == 0 ? NULL :
		hash_search(targets, &key, HASH_FIND, NULL);
	if (e == NULL || target != &e->target)
	{
		OwnTarget  *own = (OwnTarget *) target;

		e = own->shared;
		pfree(own);
		if (e == NULL)
			return;
	}
	if (--e->refs == 0 && !e->in_catalog)
		free_entry(e);
}

/* The versions cocohooks.hook_versions had at the last read, and how many. */
int
coco_hook_settings_retired(const CocoSettingsKey **keys)
{
	*keys = retired;
	return nretired;
}
