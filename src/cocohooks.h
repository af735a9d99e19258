/*-------------------------------------------------------------------------
 *
 * cocohooks.h
 *	  Declarations shared by the modules of cocohooks.
 *
 * The path of one row change:
 *
 *	row_trigger.c	  fires for a row of a hooked table, asks hook_cache.c
 *					  which hooks want the event, builds the body with
 *					  payload.c (rows rendered by row_json.c) inside an
 *					  event message laid out by event_message.c;
 *	event_emit.c	  sends a pre_* message on at once and a post_* one
 *					  to pending_events.c, writing each into the WAL first
 *					  when cocohooks.durability = wal;
 *	pending_events.c  holds post_* messages until the transaction commits;
 *	event_queue.c	  is the shared-memory ring the messages cross into;
 *	worker.c		  takes events from the ring, and from the WAL through
 *					  wal_source.c, and hands them to delivery_engine.c:
 *					  one delivery per event and hook through
 *					  http_client.c, results logged through delivery_log.c.
 *
 * An event message is self-contained: it carries the body and a copy of
 * every target hook's settings, so the worker never reads the hook catalog
 * and a message could as well come from a durable source.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_H
#define COCOHOOKS_H

#include "postgres.h"

#include "pg_compat.h"
#include "access/htup.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#ifndef COCOHOOKS_VERSION
#define COCOHOOKS_VERSION "unknown"
#endif

/* The four collection events; values index arrays and are stored in messages */
typedef enum CocoEventKind
{
	COCO_PRE_SAVE = 0,
	COCO_POST_SAVE,
	COCO_PRE_DELETE,
	COCO_POST_DELETE,
	COCO_NUM_EVENTS
} CocoEventKind;

extern const char *const coco_event_names[COCO_NUM_EVENTS];
extern int	coco_event_from_name(const char *name);

/* settings (module.c) */
extern bool cocohooks_api_session;
extern char *cocohooks_database;
extern int	cocohooks_queue_size;	/* kB */
extern int	cocohooks_max_databases;
extern int	cocohooks_max_concurrent_deliveries;
extern int	cocohooks_max_host_connections;
extern int	cocohooks_log_deliveries;
extern int	cocohooks_retry_max_backoff;	/* ms */
extern int	cocohooks_log_retention;	/* minutes */
extern int	cocohooks_durability;
extern int	cocohooks_max_wal_retention;	/* MB, -1: no limit */

typedef enum CocoDurability
{
	COCO_DURABILITY_MEMORY,
	COCO_DURABILITY_WAL
} CocoDurability;

/* true when events go into the WAL: durability = wal and the server allows it */
extern bool coco_wal_mode(void);
extern void coco_warn_if_wal_unavailable(void);

typedef enum CocoLogDeliveries
{
	COCO_LOG_NONE,
	COCO_LOG_FAILURES,
	COCO_LOG_ALL
} CocoLogDeliveries;

/* true when the library was loaded through shared_preload_libraries */
extern bool coco_preloaded;
extern void coco_require_preload(void);

/*
 * Event message layout, as it sits in the pending buffer and in the shared
 * queue (all parts 8-byte aligned via total_len):
 *
 *	CocoEventHeader
 *	hooks blob		nhooks CocoHookSpec, each followed by its strings
 *	collection		collection_len bytes (no terminator)
 *	document_id		document_id_len bytes (JSON text: a string or null)
 *	event_id		event_id_len bytes, or none
 *	body			body_len bytes, the JSON body of the POST
 *
 * A delivery's webhook-id is "<event id>_<hook id>".  A fresh event has no
 * event_id: the worker names it after the queue's epoch and the message's
 * sequence number.  A message that carries an event again (kept across a
 * restart, or redelivered) carries its original event_id, so receivers see
 * the same webhook-id.
 */
typedef struct CocoEventHeader
{
	uint32		total_len;		/* whole message, a multiple of 8 */
	uint8		event;			/* CocoEventKind */
	uint8		attempts;		/* attempts already made (carried events) */
	uint16		nhooks;
	uint32		hooks_len;
	uint32		collection_len;
	uint32		document_id_len;
	uint32		body_len;
	Oid			collection_relid;
	uint32		event_id_len;
	uint64		seq;			/* set when the message enters the queue */
	TimestampTz queued_at;		/* likewise, unless carried */
} CocoEventHeader;

#define COCO_MAX_EVENT_ID_LEN	64

/*
 * The event id of an event in the WAL: "wal_" and the 16 hex digits of the
 * end of its WAL record.  A message is built with the placeholder, written
 * to the WAL, then given its id (coco_message_set_wal_id); the WAL reader
 * gives the copy it reads the same id.
 */
#define COCO_WAL_ID_PLACEHOLDER	"wal_0000000000000000"
#define COCO_WAL_ID_LEN			20

/*
 * One target hook, as copied into every message.  Followed by url_len bytes
 * of URL, headers_len bytes of "Name: value\0" lines and key_len bytes of the
 * decoded signing key; the whole spec is padded to 8 bytes (spec_len).
 */
typedef struct CocoHookSpec
{
	uint32		spec_len;
	int32		timeout_ms;
	int64		hook_id;
	int32		max_retries;
	uint16		url_len;
	uint16		key_len;
	uint32		headers_len;
	uint32		flags;			/* COCO_SPEC_* (0 in messages of 0.1) */
} CocoHookSpec;

/* ordering = 'document': a document's events go one at a time, in order */
#define COCO_SPEC_ORDERED		0x0001

#define COCO_MAX_URL_LEN		4096
#define COCO_MAX_HEADERS_LEN	16384
#define COCO_MAX_KEY_LEN		256

static inline const char *
coco_event_hooks(const CocoEventHeader *h)
{
	return (const char *) h + sizeof(CocoEventHeader);
}

static inline const char *
coco_event_collection(const CocoEventHeader *h)
{
	return coco_event_hooks(h) + h->hooks_len;
}

static inline const char *
coco_event_document_id(const CocoEventHeader *h)
{
	return coco_event_collection(h) + h->collection_len;
}

static inline const char *
coco_event_id(const CocoEventHeader *h)
{
	return coco_event_document_id(h) + h->document_id_len;
}

static inline const char *
coco_event_body(const CocoEventHeader *h)
{
	return coco_event_id(h) + h->event_id_len;
}

static inline const char *
coco_spec_url(const CocoHookSpec *s)
{
	return (const char *) s + sizeof(CocoHookSpec);
}

static inline const char *
coco_spec_headers(const CocoHookSpec *s)
{
	return coco_spec_url(s) + s->url_len;
}

static inline const char *
coco_spec_key(const CocoHookSpec *s)
{
	return coco_spec_headers(s) + s->headers_len;
}

/* event_message.c */
extern int	coco_message_begin(StringInfo buf, CocoEventKind event,
							   Oid collection_relid,
							   const char *hooks, uint32 hooks_len, int nhooks,
							   const char *collection, uint32 collection_len,
							   const char *document_id, uint32 document_id_len,
							   const char *event_id, int attempts,
							   TimestampTz queued_at);
extern void coco_message_end(StringInfo buf, int start);
extern void coco_message_append(StringInfo buf, CocoEventKind event,
								Oid collection_relid,
								const char *hooks, uint32 hooks_len, int nhooks,
								const char *collection, uint32 collection_len,
								const char *document_id, uint32 document_id_len,
								const char *event_id, int attempts,
								TimestampTz queued_at,
								const char *body, uint32 body_len);
extern void coco_message_append_carried(StringInfo buf,
										const CocoEventHeader *orig,
										const char *hooks, uint32 hooks_len,
										int nhooks, const char *event_id,
										int attempts);
extern int	coco_secret_decode(const char *secret, char *key);
extern void coco_event_id_text(const CocoEventHeader *msg, char *out);
extern void coco_message_set_wal_id(CocoEventHeader *msg, uint64 lsn);
extern uint64 coco_message_wal_lsn(const CocoEventHeader *msg);

/* event_emit.c: where an event leaves the backend that caused it */
extern void coco_emit_at_once(char *message, Size len);
extern void coco_emit_at_commit(char *message, Size len);
extern void coco_emit_messages_at_once(char *messages, Size len);
extern void coco_emit_messages_at_commit(char *messages, Size len);
extern void coco_emit_redelivery(char *message, Size len);
extern uint64 coco_wal_log_message(char *message, Size len, bool transactional);
extern void coco_hook_spec_append(StringInfo buf, int64 hook_id,
								  const char *url, Jsonb *headers,
								  const char *secret, int32 timeout_ms,
								  int32 max_retries, uint32 flags);

/* event_queue.c */
extern Size coco_queue_shmem_size(void);
extern void coco_queue_shmem_request(void);
extern void coco_queue_shmem_startup(void);
extern bool coco_queue_available(void);
extern TimestampTz coco_queue_epoch(void);
extern int	coco_queue_push(const char *messages, Size len);
extern void coco_queue_count_dropped(uint64 n);
extern void coco_queue_wake_worker(void);
extern void coco_queue_note_wal_only(uint64 lsn);
extern void coco_commit_prepared_init(void);
extern void coco_database_pause_init(void);
extern void coco_queue_commit_prepared_begin(void);
extern void coco_queue_commit_prepared_end(uint64 lsn);
extern bool coco_queue_wal_only(uint64 *lsn);

/*
 * A database's slot (event_queue.c): free; reserved by a CREATE EXTENSION
 * not yet committed; wanting a worker; with its worker; or stopped
 * (database_pause.c: no worker may start).
 */
#define COCO_SLOT_FREE		0
#define COCO_SLOT_RESERVED	1
#define COCO_SLOT_WANTED	2
#define COCO_SLOT_RUNNING	3
#define COCO_SLOT_STOPPED	4

typedef struct CocoSlotInfo
{
	Oid			dboid;
	int			state;
	int			worker_pid;
} CocoSlotInfo;

typedef struct CocoQueue CocoQueue;
extern CocoQueue *coco_slot_ensure(Oid dboid, int state, bool *created);
extern void coco_slot_free(Oid dboid, int only_if);
extern bool coco_queue_has_slot(void);
extern int	coco_slot_set_state(Oid dboid, int state, int only_if);
extern int	coco_slot_list(CocoSlotInfo *out, int max);
extern int	coco_slot_count(void);
extern void coco_launcher_set(int pgprocno);
extern void coco_launcher_wake(void);
extern void coco_queue_set_worker(int pgprocno);
extern Size coco_queue_pop(char *dst, Size dst_size, int max_messages,
						   int *nmessages, Size *needed);
extern bool coco_queue_is_empty(void);
extern uint64 coco_queue_lose_unfinished(bool in_wal);
extern void coco_queue_hand_off_popped(void);
extern void coco_queue_store_requeued(void);
extern void coco_queue_finish_upto(uint64 seq);
extern void coco_queue_count_deliveries(uint64 delivered, uint64 failed,
										uint64 retried);
extern void coco_queue_set_in_flight(int n);
extern void coco_queue_bump_hooks_generation(void);
extern uint32 coco_queue_hooks_generation(void);
extern bool coco_queue_request_extension_check(int wait_ms);
extern bool coco_queue_extension_check_requested(uint32 *request);
extern void coco_queue_extension_checked(uint32 request);

/* event_store.c */
extern bool coco_store_save(const char *messages, Size len, uint64 n);
extern uint64 coco_store_load(StringInfo buf);
extern void coco_store_remove(void);
extern bool coco_store_exists(Oid dboid);
extern void coco_store_remove_for(Oid dboid);
extern void coco_store_adopt_legacy(const char *dbname);

/* pending_events.c */
extern void coco_pending_init(void);
extern void coco_pending_add(const char *message, Size len);
extern bool coco_pending_batching(void);
extern void coco_pending_add_batched(const char *message, Size len);

/* the prefixes of our logical messages: one event, or a batch of them */
#define COCO_WAL_PREFIX			"cocohooks"
#define COCO_WAL_BATCH_PREFIX	"cocohooks.batch"

/* drop reporting shared by the trigger and pending_events.c */
extern void coco_note_dropped(uint64 n);

/* hook_admin.c: catalog changes as the catalog's owner, in SPI */
typedef struct CocoAsOwner
{
	Oid			save_userid;	/* the caller */
	int			save_sec_context;
	int			save_nestlevel;
} CocoAsOwner;

extern void coco_begin_as_owner(CocoAsOwner *st);
extern void coco_end_as_owner(CocoAsOwner *st);
extern Oid	coco_hook_collection_for_change(int64 hook_id, CocoAsOwner *st);

/* extension_watch.c */
extern void coco_extension_watch_init(void);
extern void coco_extension_changed(void);

/* upsert_tracker.c */
extern void coco_upsert_tracker_init(void);
extern bool coco_upsert_hold(Relation rel, Oid collection, const char *msg,
							 Size len);
extern void coco_upsert_conflict(Relation rel);

/* hook_cache.c */
/* row_json.c: how to print a table's rows without to_jsonb (opaque) */
typedef struct CocoRowJsonPlan CocoRowJsonPlan;

/*
 * Columns a hook leaves out of document and old_data (exclude_columns);
 * hooks with the same set share one.
 */
typedef struct CocoExclusion
{
	int			natts;			/* of the firing relation */
	bool	   *skip;			/* per attribute: left out */
	int			nattnums;
	AttrNumber *attnums;		/* sorted: the set's identity */
	Datum		names;			/* text[] of their names, for the to_jsonb path */
} CocoExclusion;

/* A hook of an event whose table has filtered or excluding hooks. */
typedef struct CocoHookFilter
{
	int			spec_off;		/* its spec in CocoTableHooks.hooks[event] */
	int			spec_len;
	int			ncolumns;		/* columns: 0 when it fires on any update */
	AttrNumber *columns;		/* in the firing relation */
	FmgrInfo   *equal;			/* per column; fn_oid invalid: compare bytes */
	Oid		   *collations;
	int16	   *typlens;
	bool	   *typbyvals;
	bool		filtered;		/* registered with columns */
	int			exclusion;		/* index into CocoTableHooks.exclusions, or -1 */
} CocoHookFilter;

extern CocoRowJsonPlan *coco_row_json_plan(Relation rel);
extern void coco_row_json_append(StringInfo buf, CocoRowJsonPlan *plan,
								 FmgrInfo *to_jsonb, TupleDesc desc,
								 HeapTuple tuple, const CocoExclusion *ex);

typedef struct CocoTableHooks
{
	Oid			relid;			/* the relation the trigger fired on */
	bool		valid;
	Oid			collection_relid;	/* the table hooks were registered on */
	char	   *collection;		/* its name, no schema */
	AttrNumber	pk_attnum;		/* in the firing relation; 0 if none */
	Oid			pk_typoutput;
	FmgrInfo	pk_out;
	FmgrInfo	to_jsonb;		/* to_jsonb() bound to the row type */
	CocoRowJsonPlan *row_plan;	/* NULL: rows go through to_jsonb */
	/* per event: prebuilt CocoHookSpec list of enabled hooks */
	int			nhooks[COCO_NUM_EVENTS];
	char	   *hooks[COCO_NUM_EVENTS];
	uint32		hooks_len[COCO_NUM_EVENTS];
	/*
	 * Operations (TRIGGER_TYPE_INSERT/UPDATE/DELETE) whose pre_* events the
	 * AFTER trigger sends, because a BEFORE trigger of the table fires after
	 * ours (see row_trigger.c).
	 */
	int16		pre_in_after;
	/*
	 * Per event: NULL when none of its hooks has columns or exclude_columns
	 * (every hook fires, one body); else one entry per hook (hook_filters.c).
	 */
	CocoHookFilter *filters[COCO_NUM_EVENTS];
	CocoExclusion *exclusions;
	int			nexclusions;
} CocoTableHooks;

extern void coco_hook_cache_init(void);
extern CocoTableHooks *coco_hook_cache_lookup(Relation rel, Oid tgoid);

/* payload.c */
extern char *coco_document_id_json(CocoTableHooks *th, Relation rel,
								   HeapTuple tuple);
extern void coco_build_body(StringInfo buf, CocoEventKind event,
							CocoTableHooks *th, Relation rel,
							HeapTuple document, HeapTuple old_row,
							const char *document_id, const CocoExclusion *ex);

/* hook_filters.c */
extern void coco_hook_filter_load(CocoTableHooks *th, Relation rel, int event,
								  int index, int spec_off, int spec_len,
								  ArrayType *columns, ArrayType *exclude);
extern bool coco_hook_filter_fires(const CocoHookFilter *f, Relation rel,
								   HeapTuple document, HeapTuple old_row);
extern char *coco_body_from_jsonb(Jsonb *payload, CocoEventKind event);

/* worker.c */
extern bool coco_worker_start(Oid dboid, BackgroundWorkerHandle **handle);
extern PGDLLEXPORT void cocohooks_worker_main(Datum main_arg);

/* launcher.c */
extern void coco_launcher_register(void);
extern PGDLLEXPORT void cocohooks_launcher_main(Datum main_arg);

#endif							/* COCOHOOKS_H */
