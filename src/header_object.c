/*-------------------------------------------------------------------------
 *
 * header_object.c
 *	  The one walker over a hook's headers object ({"Name": "value", ...}).
 *
 * register_hook validates the object with it (hook_args.c) and the hook
 * cache turns it into the "Name: value" lines every message carries
 * (event_message.c), so both see the same pairs in the same order.
 *
 * Runs in: backends (register_hook's checks; the hook cache and
 * redeliver(), building hook specs).
 *
 * Invariants: pairs come in jsonb's stored order, one per distinct name;
 * a name is not NUL-terminated (use its length); a walk that returns
 * false has called nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "header_object.h"

/*
 * Calls fn for each name and value of a JSON object, in jsonb's order.
 * Returns false, calling nothing, if headers is not an object.
 */
bool
coco_headers_walk(Jsonb *headers, CocoHeaderFn fn, void *arg)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;
	int			name_len = 0;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		return false;
	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			name = v.val.string.val;
			name_len = v.val.string.len;
		}
		else if (tok == WJB_VALUE && name != NULL)
		{
			fn(name, name_len, &v, arg);
			name = NULL;
		}
	}
	return true;
}

/*
 * One "Name: value\0" line; a value that is not a string is left empty.
 * An empty value (or blanks only, which HTTP trims) is written "Name;",
 * libcurl's way to send a header with no value: "Name:" would remove it.
 */
static void
append_header_line(const char *name, int name_len, JsonbValue *value, void *arg)
{
	StringInfo	out = (StringInfo) arg;
	bool		empty = true;

	if (value->type == jbvString)
		for (int i = 0; i < value->val.string.len && empty; i++)
			empty = (value->val.string.val[i] == ' ' || value->val.string.val[i] == '\t');
	appendBinaryStringInfo(out, name, name_len);
	if (empty)
		appendStringInfoChar(out, ';');
	else
	{
		appendStringInfoString(out, ": ");
		appendBinaryStringInfo(out, value->val.string.val, value->val.string.len);
	}
	appendStringInfoChar(out, '\0');
}

/*
 * Appends the "Name: value\0" lines of a headers object to out, as
 * requests carry them (request_headers.c).
 */
void
coco_headers_to_lines(Jsonb *headers, StringInfo out)
{
	(void) coco_headers_walk(headers, append_header_line, out);
}
