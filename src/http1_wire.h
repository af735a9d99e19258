/*-------------------------------------------------------------------------
 *
 * http1_wire.h
 *	  HTTP/1.1 on the wire: a POST's request head, and its answer parsed
 *	  as it arrives.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP1_WIRE_H
#define COCOHOOKS_HTTP1_WIRE_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

/* "scheme://host:port" of a receiver, the key its connections are kept under */
#define COCO_H1_ORIGIN_LEN	280

/* An http:// or https:// URL taken apart; pointers into the URL itself. */
typedef struct CocoH1Url
{
	bool		tls;			/* https */
	const char *host;			/* as written, with brackets for IPv6 */
	int			host_len;
	int			port;
	bool		port_given;
	const char *target;			/* path and query, or "" for "/" */
	int			target_len;
	char		origin[COCO_H1_ORIGIN_LEN];	/* "scheme://host:port", lower case */
} CocoH1Url;

typedef enum CocoH1State
{
	H1_STATUS_LINE,
	H1_HEADER_LINE,
	H1_BODY_LENGTH,
	H1_CHUNK_SIZE,
	H1_CHUNK_DATA,
	H1_CHUNK_END,
	H1_TRAILER_LINE,
	H1_BODY_TO_CLOSE,
	H1_COMPLETE,
	H1_FAILED
} CocoH1State;

/* An answer being parsed. */
typedef struct CocoH1Response
{
	CocoH1State state;
	long		status;
	bool		keep_alive;		/* the connection may carry another request */
	bool		chunked;
	bool		has_length;
	bool		transfer_coding;	/* the head had Transfer-Encoding */
	bool		said_close;		/* Connection: close */
	bool		said_keep_alive;	/* Connection: keep-alive (HTTP/1.0) */
	uint64		remaining;		/* of the body or of the current chunk */
	long		retry_after_s;	/* Retry-After in seconds, 0 if none or past */
	size_t		body_read;		/* body bytes, decoded */
	bool		body_cut;		/* stopped at COCO_RESPONSE_MAX_READ */
	char	   *excerpt;		/* where its first COCO_RESPONSE_EXCERPT bytes go */
	const char *error;			/* why it failed (H1_FAILED) */
} CocoH1Response;

extern bool coco_h1_parse_url(const char *url, CocoH1Url *out);
extern bool coco_h1_header_field(const char *line, const char **name,
								 int *name_len, const char **value,
								 int *value_len);
extern long coco_h1_retry_after(const char *value, int len);
extern void coco_h1_request_head(const CocoH1Url *url,
								 const struct curl_slist *headers,
								 size_t body_len, StringInfo out);
extern void coco_h1_response_start(CocoH1Response *r, char *excerpt);
extern size_t coco_h1_response_feed(CocoH1Response *r, const char *data, size_t len);
extern void coco_h1_response_eof(CocoH1Response *r);

#endif							/* COCOHOOKS_HTTP1_WIRE_H */
