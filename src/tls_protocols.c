/*-------------------------------------------------------------------------
 *
 * tls_protocols.c
 *	  Which protocol each https receiver speaks, as its first connection's
 *	  ALPN told.
 *
 * Kept-alive HTTP/1.1 is cheaper written by the worker itself than as a
 * libcurl transfer (http1_conn.c), HTTP/2 is libcurl's.  Which one an
 * https receiver speaks is known only once a TLS connection to it is made
 * offering both: libcurl's transfers learn it only from the answer, on a
 * connection that then stays libcurl's (and in the pool of neither, were
 * the worker to switch).  So the first connection to an https receiver is
 * made by libcurl with CURLOPT_CONNECT_ONLY, offering HTTP/2 and HTTP/1.1,
 * and the protocol ALPN chose is read from it here: HTTP/1.1 (or none),
 * and the connection is the worker's first of its own to the receiver;
 * HTTP/2, and it is closed and the receiver's requests are libcurl
 * transfers from then on.  Requests that come meanwhile wait for the
 * answer (http_client.c).
 *
 * libcurl does not report ALPN's choice before a response; OpenSSL does,
 * on the TLS session libcurl hands out (CURLINFO_TLS_SSL_PTR), through
 * SSL_get0_alpn_selected(), looked up at run time in the libssl libcurl
 * itself loaded: no build dependency on OpenSSL.  With another TLS
 * library, or without that function, the protocol is unknown and every
 * request is libcurl's, as before.
 *
 * What a receiver speaks is remembered for the worker's life, for at most
 * MAX_TLS_ORIGINS receivers (past that, requests are libcurl's).
 *
 * Runs in: the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "tls_protocols.h"

#define MAX_TLS_ORIGINS		4096

typedef void (*AlpnSelectedFn) (const void *ssl, const unsigned char **data,
								unsigned int *len);

static HTAB *origins = NULL;
static AlpnSelectedFn alpn_selected = NULL;
static bool alpn_looked_up = false;

/* The receiver's entry, made if new; NULL when too many are known. */
CocoTlsOrigin *
coco_tls_origin(const char *origin)
{
	CocoTlsOrigin *entry;
	bool		found;

	if (origins == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = COCO_H1_ORIGIN_LEN;
		ctl.entrysize = sizeof(CocoTlsOrigin);
		ctl.hcxt = TopMemoryContext;
		origins = hash_create("cocohooks https receivers", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	entry = hash_search(origins, origin, HASH_FIND, NULL);
	if (entry)
		return entry;
	if (hash_get_num_entries(origins) >= MAX_TLS_ORIGINS)
		return NULL;
	entry = hash_search(origins, origin, HASH_ENTER, &found);
	entry->protocol = COCO_TLS_UNKNOWN;
	dlist_init(&entry->waiting);
	return entry;
}

/*
 * The protocol ALPN chose on the TLS connection easy holds (connected with
 * CURLOPT_CONNECT_ONLY, and attached to the handle again by a
 * curl_easy_recv()).
 */
CocoTlsProtocol
coco_tls_alpn(CURL *easy)
{
	struct curl_tlssessioninfo *info = NULL;
	const unsigned char *proto = NULL;
	unsigned int len = 0;

	if (!alpn_looked_up)
	{
		alpn_selected = (AlpnSelectedFn) dlsym(RTLD_DEFAULT, "SSL_get0_alpn_selected");
		alpn_looked_up = true;
	}
	if (alpn_selected == NULL ||
		curl_easy_getinfo(easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK ||
		info == NULL || info->backend != CURLSSLBACKEND_OPENSSL ||
		info->internals == NULL)
		return COCO_TLS_HTTP2;
	alpn_selected(info->internals, &proto, &len);
	if (len == 0 || (len == 8 && memcmp(proto, "http/1.1", 8) == 0))
		return COCO_TLS_HTTP1;
	return COCO_TLS_HTTP2;
}
