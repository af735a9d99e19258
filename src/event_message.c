/*-------------------------------------------------------------------------
 *
 * event_message.c
 *	  Encoding of event messages and of the hook specs they carry.
 *
 * The layout is described in cocohooks.h.  Messages and specs are padded
 * to multiples of 8 bytes, and a message's body is UTF-8 whatever the
 * database's encoding (coco_message_end).  An event is named in one place
 * (coco_event_id_text), and a secret decoded in one place
 * (coco_secret_decode), so what register_hook() accepts is what
 * deliveries sign with.  An event written while cocohooks.traceparent is
 * set carries it (and the tracestate) in an optional part that messages of
 * older versions do not have (COCO_EVENT_TRACED); a carried message keeps
 * its original's, so retries send the trace of the event's transaction.
 *
 * Runs in: backends (the row trigger, the hook cache, register_hook's
 * checks, redeliver()) and the worker (naming events, reading their WAL
 * position, saving unfinished ones to the event store).
 *
 * Invariants:
 *	- the appending functions write to a StringInfo in the caller's memory
 *	  context and may raise an error (out of memory, encoding conversion),
 *	  so none is called from a commit callback;
 *	- appending may move the buffer: a pointer into it is taken again after
 *	  every append, and a length (total_len, spec_len) is set last;
 *	- a WAL event id is filled in place over COCO_WAL_ID_PLACEHOLDER, so
 *	  the message keeps its length.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"

#include "cocohooks.h"
#include "db_slots.h"
#include "event_message.h"
#include "header_object.h"
#include "pg_compat.h"

const char *const coco_event_names[COCO_NUM_EVENTS] = {
	"pre_save", "post_save", "pre_delete", "post_delete"
};

int
coco_event_from_name(const char *name)
{
	for (int i = 0; i < COCO_NUM_EVENTS; i++)
		if (strcmp(name, coco_event_names[i]) == 0)
			return i;
	return -1;
}

static void
pad_to_8(StringInfo buf)
{
	static const char zeros[8] = {0};
	int			pad = (int) (TYPEALIGN(8, buf->len) - buf->len);

	if (pad > 0)
		appendBinaryStringInfo(buf, zeros, pad);
}

/*
 * The signing key of a secret 'whsec_<base64>', written to key (at least
 * COCO_MAX_KEY_LEN bytes).  Returns its length, or -1 when the secret is not
 * of that form or its key is not 1 to COCO_MAX_KEY_LEN bytes long.  The one
 * decoder of secrets: register_hook() validates with it what deliveries sign
 * with.
 */
int
coco_secret_decode(const char *secret, char *key)
{
	/* pg_b64_dec_len() overestimates by up to 2 bytes of padding */
	char		buf[COCO_MAX_KEY_LEN + 4];
	const char *b64;
	int			len;

	if (secret == NULL || strncmp(secret, "whsec_", 6) != 0)
		return -1;
	b64 = secret + 6;
	len = strlen(b64);
	if (len == 0 || pg_b64_dec_len(len) > (int) sizeof(buf))
		return -1;
	len = pg_b64_decode(b64, len, (coco_b64_byte *) buf, sizeof(buf));
	if (len < 1 || len > COCO_MAX_KEY_LEN)
		return -1;
	memcpy(key, buf, len);
	return len;
}

/*
 * Appends a reference to one hook's settings version (cocohooks.h);
 * unordered sends it outside its document's order.
 */
void
coco_hook_ref_append(StringInfo buf, int64 hook_id, uint32 settings_version,
					 bool unordered)
{
	CocoHookRef ref;

	/* read through a CocoHookSpec pointer: hook_id must be where it has it */
	StaticAssertStmt(offsetof(CocoHookRef, hook_id) == offsetof(CocoHookSpec, hook_id),
					 "a reference's hook_id is where a spec has it");
	StaticAssertStmt(sizeof(CocoHookRef) < sizeof(CocoHookSpec),
					 "no spec is as short as a reference");
	ref.spec_len = sizeof(CocoHookRef);
	ref.settings_version = (settings_version & COCO_REF_VERSION_MASK) |
		(unordered ? COCO_REF_UNORDERED : 0);
	ref.hook_id = hook_id;
	appendBinaryStringInfo(buf, (const char *) &ref, sizeof(ref));
}

/*
 * Appends the spec of one hook, from its catalog columns (headers and
 * secret may be NULL): the form of 0.1 and 0.2, for a catalog that has no
 * settings versions yet (before ALTER EXTENSION UPDATE).
 */
void
coco_hook_spec_append(StringInfo buf, int64 hook_id, const char *url,
					  Jsonb *headers, const char *secret,
					  int32 timeout_ms, int32 max_retries, uint32 flags)
{
	CocoHookSpec spec = {0};
	int			start = buf->len;
	StringInfoData lines;
	char		key[COCO_MAX_KEY_LEN];

	initStringInfo(&lines);
	if (headers)
		coco_headers_to_lines(headers, &lines);

	spec.hook_id = hook_id;
	spec.timeout_ms = timeout_ms;
	spec.max_retries = max_retries;
	spec.flags = flags;
	spec.url_len = (uint16) strlen(url);
	spec.headers_len = lines.len;
	spec.key_len = (uint16) Max(coco_secret_decode(secret, key), 0);
	appendBinaryStringInfo(buf, (const char *) &spec, sizeof(spec));
	appendBinaryStringInfo(buf, url, spec.url_len);
	appendBinaryStringInfo(buf, lines.data, lines.len);
	appendBinaryStringInfo(buf, key, spec.key_len);
	pad_to_8(buf);
	((CocoHookSpec *) (buf->data + start))->spec_len = buf->len - start;
	pfree(lines.data);
}

/*
 * Appends the trace part of a message (cocohooks.h): traceparent and
 * tracestate (NULL or empty: none), each with its terminator, padded.
 */
static void
append_trace(StringInfo buf, const char *traceparent, const char *tracestate)
{
	CocoTraceHeader th = {0};
	int			start = buf->len;

	th.traceparent_len = (uint16) strlen(traceparent);
	th.tracestate_len = tracestate ? (uint16) strlen(tracestate) : 0;
	appendBinaryStringInfo(buf, (const char *) &th, sizeof(th));
	appendBinaryStringInfo(buf, traceparent, th.traceparent_len + 1);
	if (th.tracestate_len > 0)
		appendBinaryStringInfo(buf, tracestate, th.tracestate_len + 1);
	pad_to_8(buf);
	((CocoTraceHeader *) (buf->data + start))->trace_len = buf->len - start;
}

/*
 * Starts one message: appends everything but the body, which the caller
 * appends next, then calls coco_message_end with the returned offset.
 * event_id is NULL for a fresh event (the worker names it); attempts counts
 * attempts already made; queued_at is 0 for "when it enters the queue".
 * traceparent NULL or empty: the event carries no trace, and tracestate is
 * not looked at (settings.c validated both).
 */
int
coco_message_begin(StringInfo buf, CocoEventKind event, Oid collection_relid,
				   const char *hooks, uint32 hooks_len, int nhooks,
				   const char *collection, uint32 collection_len,
				   const char *document_id, uint32 document_id_len,
				   const char *event_id, int attempts, TimestampTz queued_at,
				   const char *traceparent, const char *tracestate)
{
	CocoEventHeader hdr = {0};
	int			start = buf->len;
	bool		traced = traceparent != NULL && traceparent[0] != '\0';

	hdr.event_bits = (uint8) event | (traced ? COCO_EVENT_TRACED : 0);
	hdr.attempts = (uint8) Min(attempts, PG_UINT8_MAX);
	hdr.nhooks = (uint16) nhooks;
	hdr.hooks_len = hooks_len;
	hdr.collection_len = collection_len;
	hdr.document_id_len = document_id_len;
	hdr.event_id_len = event_id ? (uint32) strlen(event_id) : 0;
	hdr.collection_relid = collection_relid;
	hdr.queued_at = queued_at;

	appendBinaryStringInfo(buf, (const char *) &hdr, sizeof(hdr));
	if (traced)
		append_trace(buf, traceparent, tracestate);
	appendBinaryStringInfo(buf, hooks, hooks_len);
	appendBinaryStringInfo(buf, collection, collection_len);
	appendBinaryStringInfo(buf, document_id, document_id_len);
	if (hdr.event_id_len > 0)
		appendBinaryStringInfo(buf, event_id, hdr.event_id_len);
	return start;
}

/*
 * Ends the message begun at start: the body is what was appended since.
 * A body is JSON on the wire, so UTF-8: in a database of another encoding
 * it is converted here (SQL_ASCII declares none; its bytes go as they are).
 */
void
coco_message_end(StringInfo buf, int start)
{
	CocoEventHeader *hdr = (CocoEventHeader *) (buf->data + start);
	int			body_start = coco_event_body(hdr) - buf->data;
	int			encoding = GetDatabaseEncoding();

	if (encoding != PG_UTF8 && encoding != PG_SQL_ASCII && buf->len > body_start)
	{
		char	   *utf8 = pg_server_to_any(buf->data + body_start,
											buf->len - body_start, PG_UTF8);

		if (utf8 != buf->data + body_start)
		{
			int			len = strlen(utf8);

			buf->len = body_start;
			appendBinaryStringInfo(buf, utf8, len);
			pfree(utf8);
			hdr = (CocoEventHeader *) (buf->data + start);	/* may have moved */
		}
	}
	hdr->body_len = buf->len - body_start;
	pad_to_8(buf);
	/* padding may have moved the buffer */
	((CocoEventHeader *) (buf->data + start))->total_len = buf->len - start;
}

/* Appends one message with the given body; see coco_message_begin. */
void
coco_message_append(StringInfo buf, CocoEventKind event, Oid collection_relid,
					const char *hooks, uint32 hooks_len, int nhooks,
					const char *collection, uint32 collection_len,
					const char *document_id, uint32 document_id_len,
					const char *event_id, int attempts, TimestampTz queued_at,
					const char *traceparent, const char *tracestate,
					const char *body, uint32 body_len)
{
	int			start = coco_message_begin(buf, event, collection_relid,
										   hooks, hooks_len, nhooks,
										   collection, collection_len,
										   document_id, document_id_len,
										   event_id, attempts, queued_at,
										   traceparent, tracestate);

	appendBinaryStringInfo(buf, body, body_len);
	coco_message_end(buf, start);
}

/*
 * Appends orig again for some of its hooks, under its event id, with the
 * attempts already made, its original queue time and its trace.
 */
void
coco_message_append_carried(StringInfo buf, const CocoEventHeader *orig,
							const char *hooks, uint32 hooks_len, int nhooks,
							const char *event_id, int attempts)
{
	const CocoTraceHeader *trace = coco_event_trace(orig);

	coco_message_append(buf, coco_event_kind(orig), orig->collection_relid,
						hooks, hooks_len, nhooks,
						coco_event_collection(orig), orig->collection_len,
						coco_event_document_id(orig), orig->document_id_len,
						event_id, attempts, orig->queued_at,
						trace ? coco_trace_parent(trace) : NULL,
						trace ? coco_trace_state(trace) : NULL,
						coco_event_body(orig), orig->body_len);
}

/*
 * The event's id, as webhook-ids start with it: the id it carries, or for a
 * fresh event, one made of the queue's epoch and the message's sequence
 * number.  out holds COCO_MAX_EVENT_ID_LEN + 1 bytes.  The one place that
 * names an event.
 */
void
coco_event_id_text(const CocoEventHeader *msg, char *out)
{
	if (msg->event_id_len > 0)
		snprintf(out, COCO_MAX_EVENT_ID_LEN + 1, "%.*s",
				 (int) msg->event_id_len, coco_event_id(msg));
	else
		snprintf(out, COCO_MAX_EVENT_ID_LEN + 1, "msg_%llx_%llu",
				 (unsigned long long) coco_dbslot_epoch(),
				 (unsigned long long) msg->seq);
}

/*
 * Writes the id of the event whose WAL record ends at lsn into a message
 * built with COCO_WAL_ID_PLACEHOLDER.
 */
void
coco_message_set_wal_id(CocoEventHeader *msg, uint64 lsn)
{
	static const char hex[] = "0123456789ABCDEF";
	char	   *digits = (char *) coco_event_id(msg) + 4;

	Assert(msg->event_id_len == COCO_WAL_ID_LEN);
	for (int i = 15; i >= 0; i--)
	{
		digits[i] = hex[lsn & 0xF];
		lsn >>= 4;
	}
}

/* The WAL position in a message's event id; 0 when it has none. */
uint64
coco_message_wal_lsn(const CocoEventHeader *msg)
{
	const char *id = coco_event_id(msg);
	uint64		lsn = 0;

	if (msg->event_id_len != COCO_WAL_ID_LEN || strncmp(id, "wal_", 4) != 0)
		return 0;
	for (int i = 4; i < COCO_WAL_ID_LEN; i++)
	{
		char		c = id[i];

		lsn = (lsn << 4) | (uint64) (c <= '9' ? c - '0' : c - 'A' + 10);
	}
	return lsn;
}

/* The document id as plain text for the log: the JSON string unquoted. */
char *
coco_event_document_id_text(const CocoEventHeader *msg)
{
	const char *json = coco_event_document_id(msg);
	int			len = msg->document_id_len;
	StringInfoData buf;

	if (len < 2 || json[0] != '"')
		return NULL;
	initStringInfo(&buf);
	for (int i = 1; i < len - 1; i++)
	{
		if (json[i] == '\\' && i + 1 < len - 1)
		{
			i++;
			switch (json[i])
			{
				case 'n':
					appendStringInfoChar(&buf, '\n');
					break;
				case 't':
					appendStringInfoChar(&buf, '\t');
					break;
				case 'r':
					appendStringInfoChar(&buf, '\r');
					break;
				case 'b':
					appendStringInfoChar(&buf, '\b');
					break;
				case 'f':
					appendStringInfoChar(&buf, '\f');
					break;
				case 'u':
					/* escape_json only writes \u00XX for control characters */
					if (i + 4 < len)
					{
						char		hex[3] = {json[i + 3], json[i + 4], '\0'};

						appendStringInfoChar(&buf, (char) strtol(hex, NULL, 16));
						i += 4;
					}
					break;
				default:
					appendStringInfoChar(&buf, json[i]);
			}
		}
		else
			appendStringInfoChar(&buf, json[i]);
	}
	return buf.data;
}
