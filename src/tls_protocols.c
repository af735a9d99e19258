/*-------------------------------------------------------------------------
 *
 * tls_protocols.c
 *	  Which protocol each https receiver speaks, as its first connection's
 *	  ALPN told.
 *
 * Kept-alive HTTP/1.1 (http1_conn.c) and HTTP/2 (http2_conn.c) are
 * cheaper framed by the worker itself than as libcurl transfers.  Which
 * one an https receiver speaks is known only once a TLS connection to it
 * is made offering both: libcurl's transfers learn it only from the
 * answer, on a connection that then stays libcurl's.  So every connection
 * to an https receiver is made by libcurl with CURLOPT_CONNECT_ONLY,
 * offering HTTP/2 and HTTP/1.1 (but to one known to speak only HTTP/1.1),
 * and the protocol ALPN chose is read from it here: the connection is
 * then the worker's, for HTTP/1.1 (or no ALPN at all) or HTTP/2.  The
 * first connection to a receiver is its probe; requests that come
 * meanwhile, and those for which an HTTP/2 receiver's connections have no
 * room, wait in its list (http_client.c).
 *
 * libcurl does not report ALPN's choice before a response; OpenSSL does,
 * on the TLS session libcurl hands out (CURLINFO_TLS_SSL_PTR), through
 * SSL_get0_alpn_selected(), looked up at run time in the libssl libcurl
 * itself loaded: no build dependency on OpenSSL.  With another TLS
 * library, or without that function, the protocol is unknown and every
 * request to the receiver is a libcurl transfer.
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
typedef int (*SetAlpnProtosFn) (void *ssl_ctx, const unsigned char *protos,
								 unsigned int len);

static HTAB *origins = NULL;
static AlpnSelectedFn alpn_selected = NULL;
static SetAlpnProtosFn set_alpn_protos = NULL;
static bool looked_up = false;

/*
 * Whether connections can be made offering HTTP/2 and read back: libcurl
 * on OpenSSL, whose two ALPN functions are found.
 */
static bool
can_probe(void)
{
	if (!looked_up)
	{
		const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

		if (v->ssl_version && strncmp(v->ssl_version, "OpenSSL", 7) == 0)
		{
			alpn_selected = (AlpnSelectedFn) dlsym(RTLD_DEFAULT, "SSL_get0_alpn_selected");
			set_alpn_protos = (SetAlpnProtosFn) dlsym(RTLD_DEFAULT, "SSL_CTX_set_alpn_protos");
		}
		looked_up = true;
	}
	return alpn_selected != NULL && set_alpn_protos != NULL;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION of a connection offering HTTP/2 and HTTP/1.1.
 * The offer is ours, not libcurl's (whose ALPN is off on it): libcurl,
 * seeing HTTP/2 chosen, would put its own HTTP/2 framing on the
 * connection, and curl_easy_send() could no longer write to it.
 */
CURLcode
coco_tls_offer_h2(CURL *easy, void *ssl_ctx, void *arg)
{
	static const unsigned char protos[] = "\x02h2\x08http/1.1";

	if (!can_probe() || set_alpn_protos(ssl_ctx, protos, sizeof(protos) - 1) != 0)
		return CURLE_SSL_CONNECT_ERROR;
	return CURLE_OK;
}

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
	entry->protocol = can_probe() ? COCO_TLS_UNKNOWN : COCO_TLS_LIBCURL;
	entry->connecting = 0;
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

	if (!can_probe() ||
		curl_easy_getinfo(easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK ||
		info == NULL || info->backend != CURLSSLBACKEND_OPENSSL ||
		info->internals == NULL)
		return COCO_TLS_LIBCURL;
	alpn_selected(info->internals, &proto, &len);
	if (len == 0 || (len == 8 && memcmp(proto, "http/1.1", 8) == 0))
		return COCO_TLS_HTTP1;
	if (len == 2 && memcmp(proto, "h2", 2) == 0)
		return COCO_TLS_HTTP2;
	return COCO_TLS_LIBCURL;
}
