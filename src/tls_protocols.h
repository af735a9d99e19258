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
	COCO_TLS_HTTP2				/* ALPN chose HTTP/2, or could not be read */
} CocoTlsProtocol;

typedef struct CocoTlsOrigin
{
	char		origin[COCO_H1_ORIGIN_LEN];
	CocoTlsProtocol protocol;
	dlist_head	waiting;		/* requests waiting for the probe */
} CocoTlsOrigin;

extern CocoTlsOrigin *coco_tls_origin(const char *origin);
extern CocoTlsProtocol coco_tls_alpn(CURL *easy);

#endif							/* COCOHOOKS_TLS_PROTOCOLS_H */
