/*-------------------------------------------------------------------------
 *
 * trace_context.c
 *	  The checks of cocohooks.traceparent and cocohooks.tracestate, W3C
 *	  Trace Context (https://www.w3.org/TR/trace-context/).
 *
 * The values are checked when set (GUC check hooks, settings.c), so what
 * an event carries can go into a request header as it is: no control
 * characters, bounded lengths.
 *
 * Runs in: backends (SET), any process that reads the configuration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "trace_context.h"


/* true when the n characters at s are lowercase hex digits; *zero: all '0' */
static bool
lower_hex(const char *s, int n, bool *zero)
{
	*zero = true;
	for (int i = 0; i < n; i++)
	{
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		if (s[i] != '0')
			*zero = false;
	}
	return true;
}

/*
 * traceparent: version "-" trace-id "-" parent-id "-" flags, 2, 32, 16 and
 * 2 lowercase hex digits.  A version above 00 may add fields after the
 * flags; we accept such a version only in the form of 00 (55 characters),
 * so what an event carries stays bounded.
 */
bool
coco_check_traceparent(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	bool		zero;
	bool		trace_zero = false;
	bool		parent_zero = false;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strlen(v) < COCO_TRACEPARENT_LEN ||
		v[2] != '-' || v[35] != '-' || v[52] != '-' ||
		!lower_hex(v, 2, &zero) || !lower_hex(v + 3, 32, &trace_zero) ||
		!lower_hex(v + 36, 16, &parent_zero) || !lower_hex(v + 53, 2, &zero))
	{
		GUC_check_errdetail("A traceparent is a version, a trace-id, a parent-id and flags of 2, 32, 16 and 2 lowercase hexadecimal digits, separated by \"-\".");
		GUC_check_errhint("For example: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.");
		return false;
	}
	if (strncmp(v, "ff", 2) == 0)
	{
		GUC_check_errdetail("Version ff is invalid.");
		return false;
	}
	if (trace_zero)
	{
		GUC_check_errdetail("The trace-id must not be all zeros.");
		return false;
	}
	if (parent_zero)
	{
		GUC_check_errdetail("The parent-id must not be all zeros.");
		return false;
	}
	if (strlen(v) != COCO_TRACEPARENT_LEN)
	{
		if (strncmp(v, "00", 2) == 0)
			GUC_check_errdetail("A traceparent of version 00 has exactly %d characters.",
								COCO_TRACEPARENT_LEN);
		else
			GUC_check_errdetail("cocohooks accepts a traceparent of a version above 00 only in the form of version 00, %d characters long.",
								COCO_TRACEPARENT_LEN);
		return false;
	}
	return true;
}

/* a key's characters after its first: lowercase letters, digits, _ - * / */
static bool
key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '-' || c == '*' || c == '/';
}

/* simple-key, or multi-tenant-key tenant-id "@" system-id */
static bool
tracestate_key_valid(const char *k, int len)
{
	const char *at = memchr(k, '@', len);
	int			tenant_len = at ? at - k : len;

	if (tenant_len < 1 || tenant_len > (at ? 241 : 256))
		return false;
	if (!((k[0] >= 'a' && k[0] <= 'z') || (at && k[0] >= '0' && k[0] <= '9')))
		return false;
	for (int i = 1; i < tenant_len; i++)
		if (!key_char(k[i]))
			return false;
	if (at)
	{
		const char *sys = at + 1;
		int			sys_len = len - tenant_len - 1;

		if (sys_len < 1 || sys_len > 14 || !(sys[0] >= 'a' && sys[0] <= 'z'))
			return false;
		for (int i = 1; i < sys_len; i++)
			if (!key_char(sys[i]))
				return false;
	}
	return true;
}

/* 1 to 256 printable ASCII characters but "," and "=", not ending in a space */
static bool
tracestate_value_valid(const char *v, int len)
{
	if (len < 1 || len > 256 || v[len - 1] == ' ')
		return false;
	for (int i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] > 0x7E || v[i] == ',' || v[i] == '=')
			return false;
	return true;
}

/*
 * tracestate: up to 32 list members key=value, separated by commas and
 * optional spaces or tabs, with unique keys; empty members are allowed, as
 * the W3C grammar does.  At most 512 characters in all.
 */
bool
coco_check_tracestate(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	const char *keys[COCO_TRACESTATE_MAX_MEMBERS];
	int			key_lens[COCO_TRACESTATE_MAX_MEMBERS];
	int			nmembers = 0;
	const char *p;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strlen(v) > COCO_TRACESTATE_MAX_LEN)
	{
		GUC_check_errdetail("A tracestate has at most %d characters.",
							COCO_TRACESTATE_MAX_LEN);
		return false;
	}
	for (p = v;; p++)
	{
		const char *end = p + strcspn(p, ",");
		const char *next = end;
		const char *eq;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (p < end)
		{
			if (nmembers == COCO_TRACESTATE_MAX_MEMBERS)
			{
				GUC_check_errdetail("A tracestate has at most %d list members.",
									COCO_TRACESTATE_MAX_MEMBERS);
				return false;
			}
			eq = memchr(p, '=', end - p);
			if (eq == NULL || !tracestate_key_valid(p, eq - p))
			{
				GUC_check_errdetail("List member \"%.*s\" does not start with a valid key and \"=\".",
									(int) (end - p), p);
				GUC_check_errhint("A key is a lowercase letter and up to 255 lowercase letters, digits, \"_\", \"-\", \"*\" and \"/\"; or a tenant-id of up to 241 of those (led by a letter or digit), \"@\" and a system-id of up to 14 (led by a letter). For example: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE.");
				return false;
			}
			if (!tracestate_value_valid(eq + 1, end - eq - 1))
			{
				GUC_check_errdetail("The value of list member \"%.*s\" is invalid.",
									(int) (eq - p), p);
				GUC_check_errhint("A value is 1 to 256 printable ASCII characters other than \",\" and \"=\", not ending in a space.");
				return false;
			}
			for (int i = 0; i < nmembers; i++)
				if (key_lens[i] == eq - p && memcmp(keys[i], p, eq - p) == 0)
				{
					GUC_check_errdetail("Key \"%.*s\" appears more than once.",
										(int) (eq - p), p);
					return false;
				}
			keys[nmembers] = p;
			key_lens[nmembers] = eq - p;
			nmembers++;
		}
		if (*next == '\0')
			break;
		p = next;
	}
	return true;
}
