/*-------------------------------------------------------------------------
 *
 * request_headers.c
 *	  The headers of a delivery attempt, and its Standard Webhooks signature.
 *
 * Every attempt carries Content-Type, User-Agent, X-Hook-Event, webhook-id
 * and webhook-timestamp; a hook with a secret adds webhook-signature,
 * "v1,<base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>'>"
 * keyed with the decoded secret, computed with PostgreSQL's own HMAC code;
 * then come the hook's own headers.  An event that carries a W3C trace
 * context adds traceparent (and tracestate), which then replace the hook's
 * own headers of those names.  The secret is the hook's as of now
 * (signing_keys.c; two signatures during a rotation's overlap), or, when
 * the worker has none for the hook, the key a 0.1/0.2 message carries.
 *
 * Runs in: the worker, outside any transaction.
 *
 * Invariants:
 *	- errors are raised only for out-of-memory and a failed HMAC
 *	  computation;
 *	- the HMAC contexts belong to a resource owner of this file's own, as
 *	  no transaction's is there to track them;
 *	- an attempt's header list is one palloc'd chunk, freed with pfree; it
 *	  points into the hook's target and must not outlive it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "common/base64.h"
#include "common/hmac.h"
#include "lib/stringinfo.h"
#include "utils/resowner.h"

#include "cocohooks.h"
#include "pg_compat.h"
#include "request_headers.h"
#include "signing_keys.h"

/* the Makefile defines it; a build without the Makefile still compiles */
#ifndef COCOHOOKS_VERSION
#define COCOHOOKS_VERSION "unknown"
#endif

/* One signature, "v1,<base64 HMAC-SHA256 of 'id.timestamp.body'>", appended to out. */
static void
sign(const char *key, int key_len, const char *webhook_id, const char *timestamp,
	 const char *body, size_t body_len, StringInfo out)
{
	static ResourceOwner hmac_owner = NULL;
	ResourceOwner save_owner = CurrentResourceOwner;
	pg_hmac_ctx *ctx;
	uint8		mac[32];
	int			len;

	/* OpenSSL contexts are tracked by a resource owner; we are outside any transaction */
	if (hmac_owner == NULL)
		hmac_owner = ResourceOwnerCreate(NULL, "cocohooks signatures");
	CurrentResourceOwner = hmac_owner;
	ctx = pg_hmac_create(PG_SHA256);
	CurrentResourceOwner = save_owner;
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_hmac_init(ctx, (const uint8 *) key, key_len) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) webhook_id, strlen(webhook_id)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) timestamp, strlen(timestamp)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) body, body_len) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
	{
		CurrentResourceOwner = hmac_owner;
		pg_hmac_free(ctx);
		CurrentResourceOwner = save_owner;
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute webhook signature")));
	}
	CurrentResourceOwner = hmac_owner;
	pg_hmac_free(ctx);
	CurrentResourceOwner = save_owner;

	if (out->len > 0)
		appendStringInfoChar(out, ' ');
	appendStringInfoString(out, "v1,");
	enlargeStringInfo(out, pg_b64_enc_len(sizeof(mac)) + 1);
	len = pg_b64_encode((const coco_b64_byte *) mac, sizeof(mac), out->data + out->len,
						pg_b64_enc_len(sizeof(mac)));
	out->len += Max(len, 0);
	out->data[out->len] = '\0';
}

/* A hook header line "Name: value" or "Name;" of traceparent or tracestate */
static bool
is_trace_line(const char *line)
{
	size_t		name_len = strcspn(line, ":;");

	return (name_len == 11 && pg_strncasecmp(line, "traceparent", 11) == 0) ||
		(name_len == 10 && pg_strncasecmp(line, "tracestate", 10) == 0);
}

/*
 * The request headers of one attempt: ours, the signature when the hook
 * has a key, then the hook's own.  keys are the hook's secrets as of now
 * (signing_keys.c): during a rotation's overlap the request carries two
 * signatures, the new secret's first; NULL signs with a 0.1/0.2 message's
 * own key, if it has one.  webhook-timestamp is the time of the attempt.
 * The list is one palloc'd chunk (libcurl only reads it), so an attempt
 * costs one allocation: free it with pfree.  The hook's header lines are
 * not copied: the list must not outlive target.
 */
struct curl_slist *
coco_request_headers(const CocoEventHeader *msg, const char *event,
					 const CocoHookTarget *target, const char *webhook_id,
					 const CocoSigningKeys *keys, const char *body, size_t body_len)
{
	enum
	{
		LINE_EVENT, LINE_ID, LINE_TIMESTAMP, LINE_SIGNATURE, NLINES
	};
	int			nhook = 0;
	int			nnodes;
	int			n = 0;
	struct curl_slist *nodes;
	char	   *lines;
	char		timestamp[32];
	const char *p;
	const char *end = target->headers + target->headers_len;
	const CocoTraceHeader *trace = coco_event_trace(msg);
	Size		trace_size = 0;

	for (p = target->headers; p < end; p += strlen(p) + 1)
		nhook++;
	nnodes = 3 + NLINES + 2 + nhook;
	/* the trace's lines: "traceparent: ", "tracestate: ", values, terminators */
	if (trace)
		trace_size = 13 + trace->traceparent_len + 1 +
			12 + trace->tracestate_len + 1;
	nodes = palloc(sizeof(struct curl_slist) * nnodes +
				   NLINES * COCO_HEADER_LINE_LEN + trace_size);
	lines = (char *) (nodes + nnodes);

#define ADD(text) (nodes[n].data = (char *) (text), nodes[n].next = &nodes[n + 1], n++)
	snprintf(timestamp, sizeof(timestamp), "%lld", (long long) time(NULL));
	ADD("Content-Type: application/json");
	ADD("User-Agent: cocohooks/" COCOHOOKS_VERSION);
	snprintf(lines + LINE_EVENT * COCO_HEADER_LINE_LEN, COCO_HEADER_LINE_LEN,
			 "X-Hook-Event: %s", event);
	ADD(lines + LINE_EVENT * COCO_HEADER_LINE_LEN);
	snprintf(lines + LINE_ID * COCO_HEADER_LINE_LEN, COCO_HEADER_LINE_LEN,
			 "webhook-id: %s", webhook_id);
	ADD(lines + LINE_ID * COCO_HEADER_LINE_LEN);
	snprintf(lines + LINE_TIMESTAMP * COCO_HEADER_LINE_LEN, COCO_HEADER_LINE_LEN,
			 "webhook-timestamp: %s", timestamp);
	ADD(lines + LINE_TIMESTAMP * COCO_HEADER_LINE_LEN);
	{
		StringInfoData sigs;

		initStringInfo(&sigs);
		if (keys == NULL)
		{
			if (target->key_len > 0)
				sign(target->key, target->key_len, webhook_id, timestamp,
					 body, body_len, &sigs);
		}
		else
		{
			if (keys->key_len > 0)
				sign(keys->key, keys->key_len, webhook_id, timestamp,
					 body, body_len, &sigs);
			if (keys->previous_len > 0 && GetCurrentTimestamp() < keys->previous_until)
				sign(keys->previous, keys->previous_len, webhook_id, timestamp,
					 body, body_len, &sigs);
		}
		if (sigs.len > 0)
		{
			snprintf(lines + LINE_SIGNATURE * COCO_HEADER_LINE_LEN, COCO_HEADER_LINE_LEN,
					 "webhook-signature: %s", sigs.data);
			ADD(lines + LINE_SIGNATURE * COCO_HEADER_LINE_LEN);
		}
		pfree(sigs.data);
	}
	if (trace)
	{
		char	   *line = lines + NLINES * COCO_HEADER_LINE_LEN;
		const char *state = coco_trace_state(trace);

		sprintf(line, "traceparent: %s", coco_trace_parent(trace));
		ADD(line);
		if (state)
		{
			line += strlen(line) + 1;
			sprintf(line, "tracestate: %s", state);
			ADD(line);
		}
	}
	for (p = target->headers; p < end; p += strlen(p) + 1)
	{
		/* one traceparent per request: the event's */
		if (trace && is_trace_line(p))
			continue;
		ADD(p);
	}
	/* no "Expect: 100-continue" round trip for large bodies */
	ADD("Expect:");
#undef ADD
	nodes[n - 1].next = NULL;
	Assert(n <= nnodes);
	return nodes;
}
