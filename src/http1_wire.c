/*-------------------------------------------------------------------------
 *
 * http1_wire.c
 *	  HTTP/1.1 on the wire: a POST's request head, and its answer parsed
 *	  as it arrives.
 *
 * The worker writes and reads kept-alive HTTP/1.1 itself (http1_conn.c):
 * libcurl's per-request work (option handling, URL parsing, header
 * scanning with sscanf, a liveness poll) cost more than the rest of a
 * delivery.  This file holds the bytes: the head of a POST, the way
 * libcurl would write it for us (Host, the attempt's headers, Accept,
 * Content-Length; "Name:" left out, "Name;" sent as "Name:", in libcurl's
 * notation request_headers.c and header_object.c use), and a parser that
 * takes an answer in whatever pieces it arrives.
 *
 * Only URLs whose request line needs no rewriting are taken
 * (coco_h1_parse_url): http:// or https://, a host name or IP address, an
 * optional port, a path and query of printable ASCII without "/." or a
 * fragment.  Any other URL stays with libcurl, which normalizes it.
 *
 * The parser follows RFC 9112: a status line of HTTP/1.0 or 1.1; interim
 * 1xx answers skipped; a body framed by chunked transfer coding, by
 * Content-Length, or by the connection's close; no body after 204 and
 * 304.  It keeps the first COCO_RESPONSE_EXCERPT bytes of the body and
 * stops at COCO_RESPONSE_MAX_READ (the answer is complete, the connection
 * is not reused), as the libcurl path does.  Retry-After is read as
 * seconds or as an HTTP date.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- the parser only consumes whole lines of the head and of chunk
 *	  framing: the caller keeps an incomplete line and feeds it again with
 *	  what follows;
 *	- nothing here allocates, but the request head's StringInfo.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "utils/builtins.h"

#include "http1_wire.h"
#include "http_result.h"

static bool
is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/*
 * Takes an http:// or https:// URL apart, if it is one we send as written;
 * false sends it through libcurl.
 */
bool
coco_h1_parse_url(const char *url, CocoH1Url *out)
{
	const char *p;
	const char *auth_end;
	const char *rest;
	int			default_port;

	if (pg_strncasecmp(url, "http://", 7) == 0)
	{
		out->tls = false;
		p = url + 7;
		default_port = 80;
	}
	else if (pg_strncasecmp(url, "https://", 8) == 0)
	{
		out->tls = true;
		p = url + 8;
		default_port = 443;
	}
	else
		return false;
	auth_end = p + strcspn(p, "/?#");
	if (*auth_end == '#')
		return false;
	out->host = p;
	if (*p == '[')
	{
		const char *close = memchr(p, ']', auth_end - p);

		if (close == NULL)
			return false;
		for (const char *c = p + 1; c < close; c++)
			if (!isxdigit((unsigned char) *c) && *c != ':' && *c != '.')
				return false;
		rest = close + 1;
	}
	else
	{
		rest = p;
		while (rest < auth_end && is_host_char(*rest))
			rest++;
	}
	out->host_len = rest - p;
	if (out->host_len == 0 || out->host_len > 255)
		return false;
	out->port = default_port;
	out->port_given = false;
	if (rest < auth_end)
	{
		int			port = 0;

		if (*rest != ':' || auth_end - rest < 2 || auth_end - rest > 6)
			return false;
		for (const char *c = rest + 1; c < auth_end; c++)
		{
			if (*c < '0' || *c > '9')
				return false;
			port = port * 10 + (*c - '0');
		}
		if (port < 1 || port > 65535)
			return false;
		out->port = port;
		out->port_given = true;
	}
	out->target = auth_end;
	out->target_len = strlen(auth_end);
	for (int i = 0; i < out->target_len; i++)
	{
		unsigned char c = (unsigned char) auth_end[i];

		if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
			return false;
	}
	/* dot segments: libcurl would remove them */
	if (strstr(auth_end, "/.") != NULL)
		return false;
	snprintf(out->origin, sizeof(out->origin), "%s://%.*s:%d",
			 out->tls ? "https" : "http", out->host_len, out->host, out->port);
	for (char *c = out->origin; *c; c++)
		*c = pg_tolower((unsigned char) *c);
	return true;
}

static void
append_number(StringInfo out, uint64 n)
{
	char		digits[24];
	int			len = pg_ulltoa_n(n, digits);

	appendBinaryStringInfo(out, digits, len);
}

/*
 * One of the attempt's headers in libcurl's notation, taken apart: false
 * if it is not sent ("Name:" removes a header libcurl would add, and one
 * without a value is not sent; "Name;" sends Name with an empty value).
 */
bool
coco_h1_header_field(const char *line, const char **name, int *name_len,
					 const char **value, int *value_len)
{
	const char *colon = strchr(line, ':');
	const char *v;

	if (colon == NULL)
	{
		size_t		len = strlen(line);

		if (len > 1 && line[len - 1] == ';')
		{
			*name = line;
			*name_len = (int) len - 1;
			*value = "";
			*value_len = 0;
			return true;
		}
		return false;
	}
	if (colon == line)
		return false;
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	if (*v == '\0')
		return false;
	*name = line;
	*name_len = colon - line;
	*value = v;
	*value_len = strlen(v);
	return true;
}

/*
 * The head of a POST of body_len bytes to url, with the attempt's headers
 * (request_headers.c's list, then the hook's own).
 */
void
coco_h1_request_head(const CocoH1Url *url, const struct curl_slist *headers,
					 size_t body_len, StringInfo out)
{
	bool		accept = false;

	resetStringInfo(out);
	appendBinaryStringInfo(out, "POST ", 5);
	if (url->target_len == 0 || url->target[0] == '?')
		appendStringInfoChar(out, '/');
	appendBinaryStringInfo(out, url->target, url->target_len);
	appendBinaryStringInfo(out, " HTTP/1.1\r\nHost: ", 17);
	appendBinaryStringInfo(out, url->host, url->host_len);
	if (url->port_given && url->port != (url->tls ? 443 : 80))
	{
		appendStringInfoChar(out, ':');
		append_number(out, url->port);
	}
	appendBinaryStringInfo(out, "\r\n", 2);
	for (const struct curl_slist *h = headers; h; h = h->next)
	{
		const char *name;
		const char *value;
		int			name_len;
		int			value_len;

		if (!coco_h1_header_field(h->data, &name, &name_len, &value, &value_len))
			continue;
		if (name_len == 6 && pg_strncasecmp(name, "accept", 6) == 0)
			accept = true;
		if (value_len == 0)
		{
			/* "Name;" */
			appendBinaryStringInfo(out, name, name_len);
			appendStringInfoChar(out, ':');
		}
		else
			appendStringInfoString(out, h->data);	/* as written */
		appendBinaryStringInfo(out, "\r\n", 2);
	}
	if (!accept)
		appendBinaryStringInfo(out, "Accept: */*\r\n", 13);
	appendBinaryStringInfo(out, "Content-Length: ", 16);
	append_number(out, body_len);
	appendBinaryStringInfo(out, "\r\n\r\n", 4);
}

/* Starts parsing an answer; its body's first bytes go to excerpt. */
void
coco_h1_response_start(CocoH1Response *r, char *excerpt)
{
	memset(r, 0, sizeof(*r));
	r->state = H1_STATUS_LINE;
	r->excerpt = excerpt;
}

static void
fail(CocoH1Response *r, const char *why)
{
	r->state = H1_FAILED;
	r->error = why;
}

/* Keeps the body's first bytes; past COCO_RESPONSE_MAX_READ the answer is done. */
static void
take_body(CocoH1Response *r, const char *data, size_t n)
{
	if (r->body_read < COCO_RESPONSE_EXCERPT)
		memcpy(r->excerpt + r->body_read, data,
			   Min(n, COCO_RESPONSE_EXCERPT - r->body_read));
	r->body_read += n;
	if (r->body_read > COCO_RESPONSE_MAX_READ)
	{
		r->body_cut = true;
		r->keep_alive = false;
		r->state = H1_COMPLETE;
	}
}

/* Whether the comma-separated list value (len bytes) holds token. */
static bool
has_token(const char *value, int len, const char *token)
{
	int			tlen = strlen(token);

	for (int i = 0; i + tlen <= len; i++)
	{
		if (pg_strncasecmp(value + i, token, tlen) != 0)
			continue;
		if ((i == 0 || value[i - 1] == ',' || value[i - 1] == ' ') &&
			(i + tlen == len || value[i + tlen] == ',' || value[i + tlen] == ' '))
			return true;
	}
	return false;
}

/*
 * Retry-After (len bytes of value): delta-seconds, or an HTTP date; the
 * seconds from now, at most a day, or 0 when none or past.
 */
long
coco_h1_retry_after(const char *value, int len)
{
	char		text[64];
	time_t		when;
	long		seconds;

	if (len <= 0 || len >= (int) sizeof(text))
		return 0;
	memcpy(text, value, len);
	text[len] = '\0';
	when = curl_getdate(text, NULL);
	if (when != -1)
		seconds = (long) (when - time(NULL));
	else
	{
		char	   *end;

		errno = 0;
		seconds = strtol(text, &end, 10);
		if (end == text || errno != 0)
			return 0;
	}
	return seconds > 0 ? Min(seconds, 86400L) : 0;
}

static void
status_line(CocoH1Response *r, const char *line, int len)
{
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 ||
		(line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		!isdigit((unsigned char) line[9]) || !isdigit((unsigned char) line[10]) ||
		!isdigit((unsigned char) line[11]) || (len > 12 && line[12] != ' '))
	{
		fail(r, "the answer is not HTTP/1.1: its status line is malformed");
		return;
	}
	r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	r->keep_alive = (line[7] == '1');	/* until the headers say otherwise */
	r->chunked = false;
	r->has_length = false;
	r->said_close = r->said_keep_alive = r->transfer_coding = false;
	r->state = H1_HEADER_LINE;
}

static void
header_line(CocoH1Response *r, const char *line, int len)
{
	const char *colon = memchr(line, ':', len);
	const char *value;
	int			name_len;
	int			value_len;

	if (line[0] == ' ' || line[0] == '\t')
		return;					/* an obsolete folded line: nothing we read */
	if (colon == NULL || colon == line)
	{
		fail(r, "the answer has a malformed header line");
		return;
	}
	name_len = colon - line;
	value = colon + 1;
	value_len = len - name_len - 1;
	while (value_len > 0 && (*value == ' ' || *value == '\t'))
		value++, value_len--;
	while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;

	if (name_len == 14 && pg_strncasecmp(line, "content-length", 14) == 0)
	{
		uint64		n = 0;

		if (value_len == 0 || value_len > 18)
		{
			fail(r, "the answer has an invalid Content-Length");
			return;
		}
		for (int i = 0; i < value_len; i++)
		{
			if (!isdigit((unsigned char) value[i]))
			{
				fail(r, "the answer has an invalid Content-Length");
				return;
			}
			n = n * 10 + (value[i] - '0');
		}
		if (r->has_length && r->remaining != n)
		{
			fail(r, "the answer has two different Content-Length headers");
			return;
		}
		r->has_length = true;
		r->remaining = n;
	}
	else if (name_len == 17 && pg_strncasecmp(line, "transfer-encoding", 17) == 0)
	{
		r->transfer_coding = true;
		/* chunked is the last coding when there is one */
		r->chunked = value_len >= 7 &&
			pg_strncasecmp(value + value_len - 7, "chunked", 7) == 0;
	}
	else if (name_len == 10 && pg_strncasecmp(line, "connection", 10) == 0)
	{
		if (has_token(value, value_len, "close"))
			r->said_close = true;
		if (has_token(value, value_len, "keep-alive"))
			r->said_keep_alive = true;
	}
	else if (name_len == 11 && pg_strncasecmp(line, "retry-after", 11) == 0)
		r->retry_after_s = coco_h1_retry_after(value, value_len);
}

/* The empty line after the head: how the body is framed, if there is one. */
static void
end_of_head(CocoH1Response *r)
{
	if (r->status >= 100 && r->status < 200)
	{
		if (r->status == 101)
		{
			fail(r, "the receiver answered 101 Switching Protocols, which was not asked for");
			return;
		}
		/* an interim answer (100 Continue, 103 Early Hints): the final one follows */
		r->retry_after_s = 0;
		r->state = H1_STATUS_LINE;
		return;
	}
	if (r->said_close)
		r->keep_alive = false;
	else if (r->said_keep_alive)
		r->keep_alive = true;
	if (r->status == 204 || r->status == 304)
		r->state = H1_COMPLETE;
	else if (r->transfer_coding)
	{
		if (r->chunked)
			r->state = H1_CHUNK_SIZE;
		else
		{
			r->keep_alive = false;
			r->state = H1_BODY_TO_CLOSE;
		}
	}
	else if (r->has_length)
		r->state = r->remaining > 0 ? H1_BODY_LENGTH : H1_COMPLETE;
	else
	{
		r->keep_alive = false;
		r->state = H1_BODY_TO_CLOSE;
	}
}

static void
chunk_size_line(CocoH1Response *r, const char *line, int len)
{
	uint64		size = 0;
	int			i = 0;

	while (i < len && isxdigit((unsigned char) line[i]))
	{
		if (i >= 15)
		{
			fail(r, "the answer has a chunk too large");
			return;
		}
		size = size * 16 + (isdigit((unsigned char) line[i]) ? line[i] - '0' :
							pg_tolower((unsigned char) line[i]) - 'a' + 10);
		i++;
	}
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == 0 || (i < len && line[i] != ';'))
	{
		fail(r, "the answer has a malformed chunk");
		return;
	}
	if (size == 0)
		r->state = H1_TRAILER_LINE;
	else
	{
		r->remaining = size;
		r->state = H1_CHUNK_DATA;
	}
}

/*
 * Parses what came of the answer; returns how many bytes it consumed (an
 * incomplete line is left for the next call).  Stops at the end of the
 * answer: bytes after it are not consumed.
 */
size_t
coco_h1_response_feed(CocoH1Response *r, const char *data, size_t len)
{
	size_t		pos = 0;

	while (pos < len && r->state != H1_COMPLETE && r->state != H1_FAILED)
	{
		const char *start = data + pos;
		const char *nl;
		int			line_len;
		size_t		n;

		switch (r->state)
		{
			case H1_BODY_LENGTH:
			case H1_CHUNK_DATA:
				n = Min(r->remaining, (uint64) (len - pos));
				r->remaining -= n;
				pos += n;
				take_body(r, start, n);
				if (r->state == H1_COMPLETE)
					break;
				if (r->remaining == 0)
					r->state = r->state == H1_BODY_LENGTH ? H1_COMPLETE : H1_CHUNK_END;
				continue;
			case H1_BODY_TO_CLOSE:
				take_body(r, start, len - pos);
				pos = len;
				continue;
			default:
				break;
		}
		if (r->state == H1_COMPLETE)
			break;

		/* the states that read a line */
		nl = memchr(start, '\n', len - pos);
		if (nl == NULL)
			break;
		pos += nl - start + 1;
		line_len = nl - start;
		if (line_len > 0 && start[line_len - 1] == '\r')
			line_len--;
		switch (r->state)
		{
			case H1_STATUS_LINE:
				status_line(r, start, line_len);
				break;
			case H1_HEADER_LINE:
				if (line_len == 0)
					end_of_head(r);
				else
					header_line(r, start, line_len);
				break;
			case H1_CHUNK_SIZE:
				chunk_size_line(r, start, line_len);
				break;
			case H1_CHUNK_END:
				if (line_len != 0)
					fail(r, "the answer has a malformed chunk");
				else
					r->state = H1_CHUNK_SIZE;
				break;
			case H1_TRAILER_LINE:
				if (line_len == 0)
					r->state = H1_COMPLETE;
				break;
			default:
				Assert(false);
		}
	}
	return pos;
}

/* The connection closed: an answer framed by the close is complete. */
void
coco_h1_response_eof(CocoH1Response *r)
{
	if (r->state == H1_BODY_TO_CLOSE)
		r->state = H1_COMPLETE;
	else if (r->state != H1_COMPLETE && r->state != H1_FAILED)
		fail(r, "transfer closed with outstanding read data remaining");
}
