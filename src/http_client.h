/*-------------------------------------------------------------------------
 *
 * http_client.h
 *	  Asynchronous HTTP POSTs for the worker, on one libcurl multi handle.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP_CLIENT_H
#define COCOHOOKS_HTTP_CLIENT_H

#include "postgres.h"

#include <curl/curl.h>

#include "http_result.h"

typedef struct CocoHttp CocoHttp;

typedef void (*CocoHttpDoneFn) (void *arg, const CocoHttpResult *result);

extern CocoHttp *coco_http_create(CocoHttpDoneFn done);
extern int	coco_http_wait_fd(CocoHttp *http);
extern void coco_http_set_limits(CocoHttp *http, int max_host_connections);
extern bool coco_http_post(CocoHttp *http, const char *url,
						   struct curl_slist *headers,
						   const char *body, size_t body_len,
						   long timeout_ms, void *arg);
extern void coco_http_drive(CocoHttp *http);
extern void coco_http_flush(CocoHttp *http);
extern long coco_http_timeout_ms(CocoHttp *http);

#endif							/* COCOHOOKS_HTTP_CLIENT_H */
