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

extern struct curl_slist *coco_request_headers(const CocoEventHeader *msg,
											   const CocoHookTarget *target,
											   const char *webhook_id,
											   const CocoSigningKeys *keys);

#endif							/* COCOHOOKS_REQUEST_HEADERS_H */
