/*-------------------------------------------------------------------------
 *
 * cocohooks.h
 *	  What every part of cocohooks shares: the four events, and the layout
 *	  of an event message.
 *
 * An event message is what a row change becomes: built by the row trigger
 * in the backend, written to the WAL (durability = wal) and pushed into the
 * database's ring in shared memory, read back by the worker.  Its layout is
 * the one contract between the backends and the worker, and between
 * versions: messages written by an older version may still be in the WAL.
 *
 * src/README walks one event through the files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_H
#define COCOHOOKS_H

#include "postgres.h"

#include "utils/timestamp.h"

/* The four collection events; values index arrays and are stored in messages */
typedef enum CocoEventKind
{
	COCO_PRE_SAVE = 0,
	COCO_POST_SAVE,
	COCO_PRE_DELETE,
	COCO_POST_DELETE,
	COCO_NUM_EVENTS
} CocoEventKind;

/* event_message.c */
extern const char *const coco_event_names[COCO_NUM_EVENTS];
extern int	coco_event_from_name(const char *name);

/*
 * Event message layout, as it sits in the pending buffer and in the shared
 * queue (all parts 8-byte aligned via total_len):
 *
 *	CocoEventHeader
 *	trace			a CocoTraceHeader and its text, only when event_bits has
 *					COCO_EVENT_TRACED set
 *	hooks blob		nhooks CocoHookRef (0.3) or CocoHookSpec (0.1, 0.2)
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
 *
 * The trace part is optional and flagged by a bit of event_bits that no
 * older version sets (they wrote the bare CocoEventKind there), so their
 * messages still read as untraced.  The field is not named "event" so that
 * nobody reads it without coco_event_kind().
 */
typedef struct CocoEventHeader
{
	uint32		total_len;		/* whole message, a multiple of 8 */
	uint8		event_bits;		/* CocoEventKind | COCO_EVENT_TRACED */
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

#define COCO_EVENT_KIND_MASK	0x0F
/* the message has a trace part (W3C trace context, cocohooks.traceparent) */
#define COCO_EVENT_TRACED		0x80

#define COCO_MAX_EVENT_ID_LEN	64

/*
 * The trace part: the traceparent and tracestate in force when the event
 * was written, each followed by a '\0' (tracestate_len 0: none), padded to
 * 8 bytes (trace_len) so the hooks blob stays aligned.  settings.c bounds
 * their lengths.
 */
typedef struct CocoTraceHeader
{
	uint16		trace_len;		/* the whole part, a multiple of 8 */
	uint16		traceparent_len;
	uint16		tracestate_len;
	uint16		unused;
} CocoTraceHeader;

/*
 * The event id of an event in the WAL: "wal_" and the 16 hex digits of the
 * end of its WAL record.  A message is built with the placeholder, written
 * to the WAL, then given its id (coco_message_set_wal_id); the WAL reader
 * gives the copy it reads the same id.
 */
#define COCO_WAL_ID_PLACEHOLDER	"wal_0000000000000000"
#define COCO_WAL_ID_LEN			20

/*
 * One target hook, by reference: the worker takes its URL, headers,
 * timeout, retries and ordering from the catalog, as they were in settings
 * version settings_version (cocohooks.hooks, or cocohooks.hook_versions
 * once changed or unregistered; hook_settings.c), and signs with its
 * secrets as of the attempt.  So no secret and no header value is ever in
 * a message, in the WAL or in the queue.  spec_len is
 * sizeof(CocoHookRef), which no CocoHookSpec is, and hook_id is where a
 * CocoHookSpec has it.
 */
typedef struct CocoHookRef
{
	uint32		spec_len;
	uint32		settings_version;	/* | COCO_REF_UNORDERED */
	int64		hook_id;
} CocoHookRef;

#define COCO_REF_VERSION_MASK	0x7FFFFFFF
/* sent outside its document's order (redeliver()), whatever the hook's ordering */
#define COCO_REF_UNORDERED		0x80000000

/*
 * One target hook, as 0.1 and 0.2 copied it into every message (the
 * hook's settings, secret included), still read from the WAL they wrote;
 * and as a message is built before ALTER EXTENSION UPDATE has added
 * settings versions to the catalog.  Followed by url_len bytes
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

/*
 * max_retries of a hook with no limit on the count (NULL in the catalog):
 * its retries stop at its retry_for, which the worker reads from the
 * catalog (hook_settings.c), or when the hook is disabled.
 */
#define COCO_RETRIES_UNLIMITED	PG_INT32_MAX

/* ordering = 'document': a document's events go one at a time, in order */
#define COCO_SPEC_ORDERED		0x0001

#define COCO_MAX_URL_LEN		4096
#define COCO_MAX_HEADERS_LEN	16384
#define COCO_MAX_KEY_LEN		256

static inline CocoEventKind
coco_event_kind(const CocoEventHeader *h)
{
	return (CocoEventKind) (h->event_bits & COCO_EVENT_KIND_MASK);
}

/* the trace part, or NULL when the event carries none */
static inline const CocoTraceHeader *
coco_event_trace(const CocoEventHeader *h)
{
	if (!(h->event_bits & COCO_EVENT_TRACED))
		return NULL;
	return (const CocoTraceHeader *) ((const char *) h + sizeof(CocoEventHeader));
}

/* the traceparent, '\0'-terminated; the trace part must be there */
static inline const char *
coco_trace_parent(const CocoTraceHeader *t)
{
	return (const char *) t + sizeof(CocoTraceHeader);
}

/* the tracestate, '\0'-terminated, or NULL when it has none */
static inline const char *
coco_trace_state(const CocoTraceHeader *t)
{
	if (t->tracestate_len == 0)
		return NULL;
	return coco_trace_parent(t) + t->traceparent_len + 1;
}

static inline const char *
coco_event_hooks(const CocoEventHeader *h)
{
	const CocoTraceHeader *t = coco_event_trace(h);

	return (const char *) h + sizeof(CocoEventHeader) + (t ? t->trace_len : 0);
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

static inline bool
coco_spec_is_ref(const CocoHookSpec *s)
{
	return s->spec_len == sizeof(CocoHookRef);
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

/* the prefixes of our logical messages: one event, or a batch of them */
#define COCO_WAL_PREFIX			"cocohooks"
#define COCO_WAL_BATCH_PREFIX	"cocohooks.batch"

#endif							/* COCOHOOKS_H */
