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
