/*-------------------------------------------------------------------------
 *
 * tls_protocols.h
 *	  Which protocol each https receiver speaks, as its first connection's
 *	  ALPN told.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_TLS_PROTOCOLS_H
#define COCOHOOKS_TLS_PROTOCOLS_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/ilist.h"

#include "http1_wire.h"

typedef enum CocoTlsProtocol
{
	COCO_TLS_UNKNOWN,			/* never asked, or the last probe failed */
	COCO_TLS_PROBING,			/* a connection offering HTTP/2 is being made */
	COCO_TLS_HTTP1,				/* ALPN chose HTTP/1.1, or nothing */
	COCO_TLS_HTTP2,				/* ALPN chose HTTP/2 */
	COCO_TLS_LIBCURL			/* ALPN could not be read: libcurl's transfers */
} CocoTlsProtocol;

typedef struct CocoTlsOrigin
{
	char		origin[COCO_H1_ORIGIN_LEN];
	CocoTlsProtocol protocol;
	int			connecting;		/* connections offering HTTP/2 being made */
	dlist_head	waiting;		/* requests waiting for a connection */
} CocoTlsOrigin;

extern CocoTlsOrigin *coco_tls_origin(const char *origin);
extern CocoTlsProtocol coco_tls_alpn(CURL *easy);
extern CURLcode coco_tls_offer_h2(CURL *easy, void *ssl_ctx, void *arg);

#endif							/* COCOHOOKS_TLS_PROTOCOLS_H */
