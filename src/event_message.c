/*-------------------------------------------------------------------------
 *
 * event_message.c
 *	  Encoding of event messages and of the hook specs they carry.
 *
 * The layout is described in cocohooks.h.  Both functions append to a
 * StringInfo in the caller's memory context and may raise an error (out of
 * memory), so they run in the trigger, never in a commit callback.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

static void
pad_to_8(StringInfo buf)
{
	static const char zeros[8] = {0};
	int			pad = (int) (TYPEALIGN(8, buf->len) - buf->len);

	if (pad > 0)
		appendBinaryStringInfo(buf, zeros, pad);
}

void
coco_hook_spec_append(StringInfo buf, int64 hook_id, const char *url,
					  const char *headers, uint32 headers_len,
					  const char *key, uint32 key_len,
					  int32 timeout_ms, int32 max_retries)
{
	CocoHookSpec spec = {0};
	int			start = buf->len;

	spec.hook_id = hook_id;
	spec.timeout_ms = timeout_ms;
	spec.max_retries = max_retries;
	spec.url_len = (uint16) strlen(url);
	spec.headers_len = headers_len;
	spec.key_len = (uint16) key_len;
	appendBinaryStringInfo(buf, (const char *) &spec, sizeof(spec));
	appendBinaryStringInfo(buf, url, spec.url_len);
	if (headers_len > 0)
		appendBinaryStringInfo(buf, headers, headers_len);
	if (key_len > 0)
		appendBinaryStringInfo(buf, key, key_len);
	pad_to_8(buf);
	((CocoHookSpec *) (buf->data + start))->spec_len = buf->len - start;
}

void
coco_message_append(StringInfo buf, CocoEventKind event, Oid collection_relid,
					const char *hooks, uint32 hooks_len, int nhooks,
					const char *collection, const char *document_id,
					const char *body, uint32 body_len)
{
	CocoEventHeader hdr = {0};
	int			start = buf->len;

	hdr.event = (uint8) event;
	hdr.nhooks = (uint16) nhooks;
	hdr.hooks_len = hooks_len;
	hdr.collection_len = (uint32) strlen(collection);
	hdr.document_id_len = document_id ? (uint32) strlen(document_id) : 0;
	hdr.body_len = body_len;
	hdr.collection_relid = collection_relid;
	appendBinaryStringInfo(buf, (const char *) &hdr, sizeof(hdr));
	appendBinaryStringInfo(buf, hooks, hooks_len);
	appendBinaryStringInfo(buf, collection, hdr.collection_len);
	if (hdr.document_id_len > 0)
		appendBinaryStringInfo(buf, document_id, hdr.document_id_len);
	appendBinaryStringInfo(buf, body, body_len);
	pad_to_8(buf);
	((CocoEventHeader *) (buf->data + start))->total_len = buf->len - start;
}
