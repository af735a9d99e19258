/*-------------------------------------------------------------------------
 *
 * event_message.h
 *	  Building event messages and naming events: the layout is in cocohooks.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_MESSAGE_H
#define COCOHOOKS_EVENT_MESSAGE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "cocohooks.h"

extern int	coco_message_begin(StringInfo buf, CocoEventKind event,
							   Oid collection_relid,
							   const char *hooks, uint32 hooks_len, int nhooks,
							   const char *collection, uint32 collection_len,
							   const char *document_id, uint32 document_id_len,
							   const char *event_id, int attempts,
							   TimestampTz queued_at,
							   const char *traceparent, const char *tracestate);
extern void coco_message_end(StringInfo buf, int start);
extern void coco_message_append(StringInfo buf, CocoEventKind event,
								Oid collection_relid,
								const char *hooks, uint32 hooks_len, int nhooks,
								const char *collection, uint32 collection_len,
								const char *document_id, uint32 document_id_len,
								const char *event_id, int attempts,
								TimestampTz queued_at,
								const char *traceparent, const char *tracestate,
								const char *body, uint32 body_len);
extern void coco_message_append_carried(StringInfo buf,
										const CocoEventHeader *orig,
										const char *hooks, uint32 hooks_len,
										int nhooks, const char *event_id,
										int attempts);
extern int	coco_secret_decode(const char *secret, char *key);
extern void coco_event_id_text(const CocoEventHeader *msg, char *out);
/* the document id as plain text (the JSON string unquoted), or NULL */
extern char *coco_event_document_id_text(const CocoEventHeader *msg);
extern void coco_message_set_wal_id(CocoEventHeader *msg, uint64 lsn);
extern uint64 coco_message_wal_lsn(const CocoEventHeader *msg);

extern void coco_hook_ref_append(StringInfo buf, int64 hook_id,
								 uint32 settings_version, bool unordered);
extern void coco_hook_spec_append(StringInfo buf, int64 hook_id,
								  const char *url, Jsonb *headers,
								  const char *secret, int32 timeout_ms,
								  int32 max_retries, uint32 flags);

#endif							/* COCOHOOKS_EVENT_MESSAGE_H */
