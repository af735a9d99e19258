/*-------------------------------------------------------------------------
 *
 * request_headers.c
 *	  The headers of a delivery attempt, and its Standard Webhooks signature.
 *
 * Every attempt carries Content-Type, User-Agent, X-Hook-Event, webhook-id
 * and webhook-timestamp; a hook with a secret adds webhook-signature,
 * "v1,<base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>'>"
 * keyed with the decoded secret, computed with PostgreSQL's own HMAC code;
 * then come the hook's own headers.  Used by the worker, outside any
 * transaction; raises errors only for out-of-memory.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include <time.h>

#include "common/base64.h"
#include "common/hmac.h"
#include "utils/resowner.h"

#include "http_client.h"

/* webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body"> */
static char *
sign(const CocoHookSpec *spec, const char *webhook_id, const char *timestamp,
	 const char *body, size_t body_len)
{
	static ResourceOwner hmac_owner = NULL;
	ResourceOwner save_owner = CurrentResourceOwner;
	pg_hmac_ctx *ctx;
	uint8		mac[32];
	char	   *out;
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
	if (pg_hmac_init(ctx, (const uint8 *) coco_spec_key(spec), spec->key_len) < 0 ||
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

	out = palloc(4 + pg_b64_enc_len(sizeof(mac)) + 1);
	memcpy(out, "v1,", 3);
	len = pg_b64_encode((const char *) mac, sizeof(mac), out + 3,
						pg_b64_enc_len(sizeof(mac)));
	out[3 + Max(len, 0)] = '\0';
	return out;
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (l == NULL)
	{
		curl_slist_free_all(list);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	return l;
}

/*
 * The request headers of one attempt: ours, the signature when the hook
 * has a key, then the hook's own.  webhook-timestamp is the time of the
 * attempt.  The list is malloc'd by libcurl: free it with
 * curl_slist_free_all.
 */
struct curl_slist *
coco_request_headers(const CocoEventHeader *msg, const CocoHookSpec *spec,
					 const char *webhook_id)
{
	struct curl_slist *h = NULL;
	char		line[256];
	char		timestamp[32];
	const char *p;
	const char *end;

	snprintf(timestamp, sizeof(timestamp), "%lld", (long long) time(NULL));
	h = add_header(h, "Content-Type: application/json");
	h = add_header(h, "User-Agent: cocohooks/" COCOHOOKS_VERSION);
	snprintf(line, sizeof(line), "X-Hook-Event: %s", coco_event_names[msg->event]);
	h = add_header(h, line);
	snprintf(line, sizeof(line), "webhook-id: %s", webhook_id);
	h = add_header(h, line);
	snprintf(line, sizeof(line), "webhook-timestamp: %s", timestamp);
	h = add_header(h, line);
	if (spec->key_len > 0)
	{
		char	   *sig = sign(spec, webhook_id, timestamp,
							   coco_event_body(msg), msg->body_len);

		snprintf(line, sizeof(line), "webhook-signature: %s", sig);
		pfree(sig);
		h = add_header(h, line);
	}
	p = coco_spec_headers(spec);
	end = p + spec->headers_len;
	while (p < end)
	{
		h = add_header(h, p);
		p += strlen(p) + 1;
	}
	/* no "Expect: 100-continue" round trip for large bodies */
	h = add_header(h, "Expect:");
	return h;
}
