/*-------------------------------------------------------------------------
 *
 * request_headers.h
 *	  The header lines of one delivery's request.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_REQUEST_HEADERS_H
#define COCOHOOKS_REQUEST_HEADERS_H

#include "postgres.h"

#include <curl/curl.h>

#include "cocohooks.h"
#include "hook_settings.h"
#include "signing_keys.h"

/* the longest line we build (an id, two signatures) */
#define COCO_HEADER_LINE_LEN	160

/*
 * msg gives the trace context; event is X-Hook-Event's value; body is what
 * is signed (the event's body, or a batch's array)
 */
extern struct curl_slist *coco_request_headers(const CocoEventHeader *msg,
											   const char *event,
											   const CocoHookTarget *target,
											   const char *webhook_id,
											   const CocoSigningKeys *keys,
											   const char *body, size_t body_len);

#endif							/* COCOHOOKS_REQUEST_HEADERS_H */
