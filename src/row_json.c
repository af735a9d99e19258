/*-------------------------------------------------------------------------
 *
 * row_json.c
 *	  A row as JSON text, exactly as to_jsonb(row)::text renders it.
 *
 * to_jsonb builds a jsonb value and JsonbToCString prints it; on the way it
 * looks up every column's type category in the catalogs for every row.
 * This file does that lookup once per table (a "plan", kept in the hook
 * cache) and prints each row straight into the caller's buffer:
 *
 *	- keys in jsonb's order (shorter names first, then bytewise), each
 *	  written as jsonb writes it, with separators ", " and ": ";
 *	- bool as true/false; int2/int4/int8 as their digits; numeric, float4
 *	  and float8 as their numeric_out text, or a string when they are NaN or
 *	  infinite (to_jsonb turns floats into numeric first, so this file does
 *	  too); date and timestamps in JSON's ISO form; jsonb as it prints;
 *	  json parsed into jsonb first, as to_jsonb does; arrays of any of
 *	  these as nested JSON arrays, one level per dimension; any other type
 *	  as a JSON string of its output function's text.
 *
 * Domains count as their base type, as in to_jsonb.  A table with a
 * composite column, a column of a type with a cast to json, or an array of
 * either has no plan, and its rows go through to_jsonb itself.  So does any
 * row whose text comes out bigger than ROW_JSON_FAST_LIMIT, so that jsonb's
 * size limits raise the errors they raise for to_jsonb.
 *
 * Runs in: backends running a row trigger (plans are built by the hook
 * cache, rows rendered through payload.c).
 *
 * Invariants:
 *	- a plan is built in the hook cache entry's memory context and goes
 *	  with the entry; a change to pg_cast drops every entry, since a new
 *	  cast to json changes what to_jsonb does (hook_cache.c);
 *	- type categories are looked up when the plan is built, not per row;
 *	- building a plan may raise errors (catalog access); rendering
 *	  allocates in the current memory context and may raise errors
 *	  (output functions).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "parser/parse_coerce.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "hook_cache.h"
#include "row_json.h"

/* rows whose text is longer than this are rendered again by to_jsonb */
#define ROW_JSON_FAST_LIMIT		(1024 * 1024)

typedef enum ColumnKind
{
	COLUMN_BOOL,
	COLUMN_INT2,
	COLUMN_INT4,
	COLUMN_INT8,
	COLUMN_NUMBER,				/* numeric: its text, unless NaN or infinite */
	COLUMN_FLOAT,				/* float4/8: through numeric, like to_jsonb */
	COLUMN_DATETIME,			/* date, timestamp, timestamptz */
	COLUMN_JSONB,
	COLUMN_JSON,				/* parsed into jsonb, as to_jsonb does */
	COLUMN_ARRAY,				/* nested JSON arrays of one element kind */
	COLUMN_TEXT,				/* text, varchar: their bytes, no output call */
	COLUMN_STRING				/* any other type: its output text */
} ColumnKind;

typedef struct RowJsonColumn
{
	AttrNumber	attnum;
	ColumnKind	kind;
	Oid			base_type;		/* for COLUMN_DATETIME and COLUMN_ARRAY */
	char	   *key;			/* the escaped key and ": " */
	int			key_len;
	FmgrInfo	out;			/* output function, for the text kinds */
	/* COLUMN_ARRAY: how to take the array apart, and its elements' kind */
	struct RowJsonColumn *elem;
	Oid			elem_type;
	int16		elem_len;
	bool		elem_byval;
	char		elem_align;
} RowJsonColumn;

struct CocoRowJsonPlan
{
	int			ncolumns;
	RowJsonColumn columns[FLEXIBLE_ARRAY_MEMBER];
};

/*
 * How to_jsonb renders a column of type typid; false when this file cannot
 * render it alone.  Mirrors the type categories of to_jsonb.
 */
static bool
plan_column(RowJsonColumn *col, Oid typid)
{
	Oid			base = getBaseType(typid);
	Oid			outfunc;
	bool		isvarlena;

	col->base_type = base;
	switch (base)
	{
		case BOOLOID:
			col->kind = COLUMN_BOOL;
			return true;
		case INT2OID:
			col->kind = COLUMN_INT2;
			return true;
		case INT4OID:
			col->kind = COLUMN_INT4;
			return true;
		case INT8OID:
			col->kind = COLUMN_INT8;
			return true;
		case NUMERICOID:
			col->kind = COLUMN_NUMBER;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			col->kind = COLUMN_FLOAT;
			break;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			col->kind = COLUMN_DATETIME;
			return true;
		case JSONBOID:
			col->kind = COLUMN_JSONB;
			return true;
		case JSONOID:
			col->kind = COLUMN_JSON;
			return true;
		case TEXTOID:
		case VARCHAROID:
			col->kind = COLUMN_TEXT;
			return true;
		default:
			if (OidIsValid(get_element_type(base)))
			{
				/*
				 * Elements of one kind.  An element that is itself an array
				 * (a domain over one) is left to to_jsonb.
				 */
				col->kind = COLUMN_ARRAY;
				col->elem_type = get_element_type(base);
				col->elem = palloc0(sizeof(RowJsonColumn));
				if (!plan_column(col->elem, col->elem_type) ||
					col->elem->kind == COLUMN_ARRAY)
					return false;
				get_typlenbyvalalign(col->elem_type, &col->elem_len,
									 &col->elem_byval, &col->elem_align);
				return true;
			}
			if (base == ANYARRAYOID || base == ANYCOMPATIBLEARRAYOID ||
				base == RECORDARRAYOID || type_is_rowtype(base))
				return false;
			if (base >= FirstNormalObjectId)
			{
				Oid			castfunc;

				if (find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT,
										  &castfunc) == COERCION_PATH_FUNC &&
					OidIsValid(castfunc))
					return false;
			}
			col->kind = COLUMN_STRING;
			break;
	}
	getTypeOutputInfo(base, &outfunc, &isvarlena);
	fmgr_info_cxt(outfunc, &col->out, CurrentMemoryContext);
	return true;
}

typedef struct KeyedColumn
{
	const char *name;
	int			len;
	AttrNumber	attnum;
	Oid			typid;
} KeyedColumn;

/* jsonb's key order: shorter first, then bytewise */
static int
compare_keyed_columns(const void *a, const void *b)
{
	const KeyedColumn *x = a;
	const KeyedColumn *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->name, y->name, x->len);
}

/*
 * The plan for rel's rows, or NULL when some column needs to_jsonb.
 * Allocates in the current memory context; may raise errors.
 */
CocoRowJsonPlan *
coco_row_json_plan(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	KeyedColumn *keyed = palloc(sizeof(KeyedColumn) * Max(desc->natts, 1));
	CocoRowJsonPlan *plan;
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		keyed[n].name = NameStr(att->attname);
		keyed[n].len = strlen(keyed[n].name);
		keyed[n].attnum = att->attnum;
		keyed[n].typid = att->atttypid;
		n++;
	}
	qsort(keyed, n, sizeof(KeyedColumn), compare_keyed_columns);

	plan = palloc0(offsetof(CocoRowJsonPlan, columns) + sizeof(RowJsonColumn) * n);
	plan->ncolumns = n;
	for (int i = 0; i < n; i++)
	{
		RowJsonColumn *col = &plan->columns[i];
		StringInfoData key;

		if (!plan_column(col, keyed[i].typid))
		{
			pfree(keyed);
			return NULL;
		}
		col->attnum = keyed[i].attnum;
		initStringInfo(&key);
		if (i > 0)
			appendStringInfoString(&key, ", ");
		escape_json(&key, keyed[i].name);
		appendStringInfoString(&key, ": ");
		col->key = key.data;
		col->key_len = key.len;
	}
	pfree(keyed);
	return plan;
}

/*
 * s[0..len) as a JSON string, byte for byte what escape_json() writes, but
 * copying each run of bytes that need no escape at once (escape_json goes a
 * byte at a time, and wants a NUL-terminated copy of a text value).
 */
static void
append_escaped(StringInfo buf, const char *s, Size len)
{
	const char *end = s + len;

	enlargeStringInfo(buf, len + 2);
	appendStringInfoCharMacro(buf, '"');
	while (s < end)
	{
		const char *run = s;

		while (s < end && (unsigned char) *s >= ' ' && *s != '"' && *s != '\\')
			s++;
		if (s > run)
			appendBinaryStringInfo(buf, run, s - run);
		if (s == end)
			break;
		switch (*s)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				appendStringInfo(buf, "\\u%04x", (int) *s);
				break;
		}
		s++;
	}
	appendStringInfoCharMacro(buf, '"');
}

/* a string value, refused above jsonb's limit as to_jsonb refuses it */
static void
append_json_string(StringInfo buf, const char *s, Size len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string"),
				 errdetail("Due to an implementation restriction, jsonb strings cannot exceed %d bytes.",
						   JENTRY_OFFLENMASK)));
	append_escaped(buf, s, len);
}

/*
 * Numeric text as a JSON number, or as a string when it is NaN or infinite
 * (to_jsonb's test: such text, and only such, has an 'n' or 'N').
 */
static void
append_number_text(StringInfo buf, const char *text)
{
	if (strchr(text, 'N') != NULL || strchr(text, 'n') != NULL)
		escape_json(buf, text);
	else
		appendStringInfoString(buf, text);
}

static void append_value(StringInfo buf, RowJsonColumn *col, Datum value);

/* One dimension of an array, as to_jsonb nests them: [[1, 2], [3, 4]] */
static void
append_array_dim(StringInfo buf, RowJsonColumn *elem, int dim, int ndim,
				 const int *dims, const Datum *values, const bool *nulls,
				 int *next)
{
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < dims[dim]; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (dim + 1 < ndim)
			append_array_dim(buf, elem, dim + 1, ndim, dims, values, nulls, next);
		else
		{
			if (nulls[*next])
				appendStringInfoString(buf, "null");
			else
				append_value(buf, elem, values[*next]);
			(*next)++;
		}
	}
	appendStringInfoChar(buf, ']');
}

static void
append_array(StringInfo buf, RowJsonColumn *col, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int			ndim = ARR_NDIM(arr);
	int		   *dims = ARR_DIMS(arr);
	Datum	   *values;
	bool	   *nulls;
	int			nitems;
	int			next = 0;

	if (ArrayGetNItems(ndim, dims) <= 0)
	{
		appendStringInfoString(buf, "[]");
		return;
	}
	deconstruct_array(arr, col->elem_type, col->elem_len, col->elem_byval,
					  col->elem_align, &values, &nulls, &nitems);
	append_array_dim(buf, col->elem, 0, ndim, dims, values, nulls, &next);
}

static void
append_value(StringInfo buf, RowJsonColumn *col, Datum value)
{
	char		digits[MAXINT8LEN + 1];
	char		datebuf[MAXDATELEN + 1];
	int			len;

	switch (col->kind)
	{
		case COLUMN_BOOL:
			appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
			break;
		case COLUMN_INT2:
			len = pg_ltoa((int32) DatumGetInt16(value), digits);
			appendBinaryStringInfo(buf, digits, len);
			break;
		case COLUMN_INT4:
			len = pg_ltoa(DatumGetInt32(value), digits);
			appendBinaryStringInfo(buf, digits, len);
			break;
		case COLUMN_INT8:
			len = pg_lltoa(DatumGetInt64(value), digits);
			appendBinaryStringInfo(buf, digits, len);
			break;
		case COLUMN_NUMBER:
			append_number_text(buf, OutputFunctionCall(&col->out, value));
			break;
		case COLUMN_FLOAT:
			{
				char	   *text = OutputFunctionCall(&col->out, value);

				/* a finite float goes through numeric, as in to_jsonb */
				if (strchr(text, 'N') == NULL && strchr(text, 'n') == NULL)
				{
					Datum		num = DirectFunctionCall3(numeric_in,
														  CStringGetDatum(text),
														  ObjectIdGetDatum(InvalidOid),
														  Int32GetDatum(-1));

					text = DatumGetCString(DirectFunctionCall1(numeric_out, num));
				}
				append_number_text(buf, text);
				break;
			}
		case COLUMN_DATETIME:
			escape_json(buf, JsonEncodeDateTime(datebuf, value, col->base_type, NULL));
			break;
		case COLUMN_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
				break;
			}
		case COLUMN_JSON:
			{
				/* to_jsonb parses json as jsonb_in does: keys sorted, last duplicate kept */
				Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																   CStringGetDatum(TextDatumGetCString(value))));

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
				break;
			}
		case COLUMN_ARRAY:
			append_array(buf, col, value);
			break;
		case COLUMN_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				append_json_string(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				break;
			}
		case COLUMN_STRING:
			{
				char	   *text = OutputFunctionCall(&col->out, value);

				append_json_string(buf, text, strlen(text));
				break;
			}
	}
}

/* Appends the row through to_jsonb itself. */
static void
append_through_to_jsonb(StringInfo buf, FmgrInfo *to_jsonb, TupleDesc desc,
						HeapTuple tuple, const CocoExclusion *ex)
{
	Datum		row = heap_copy_tuple_as_datum(tuple, desc);
	Jsonb	   *jb = DatumGetJsonbP(FunctionCall1(to_jsonb, row));

	if (ex != NULL)
		jb = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete_array,
												JsonbPGetDatum(jb), ex->names));

	(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
}

/*
 * Appends tuple, a row of desc, as to_jsonb(row)::text.  plan may be NULL;
 * to_jsonb must be to_jsonb() bound to the row type.  ex, if not NULL,
 * names columns whose keys are left out; the rest is what it would be
 * without them, byte for byte.
 */
void
coco_row_json_append(StringInfo buf, CocoRowJsonPlan *plan, FmgrInfo *to_jsonb,
					 TupleDesc desc, HeapTuple tuple, const CocoExclusion *ex)
{
	int			start = buf->len;
	Datum	   *values;
	bool	   *isnull;
	bool		first = true;

	if (plan == NULL)
	{
		append_through_to_jsonb(buf, to_jsonb, desc, tuple, ex);
		return;
	}

	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tuple, desc, values, isnull);

	appendStringInfoChar(buf, '{');
	for (int i = 0; i < plan->ncolumns; i++)
	{
		RowJsonColumn *col = &plan->columns[i];
		int			att = col->attnum - 1;

		if (ex != NULL && att < ex->natts && ex->skip[att])
			continue;
		/* a key after the first carries its ", " */
		if (first && i > 0)
			appendBinaryStringInfo(buf, col->key + 2, col->key_len - 2);
		else
			appendBinaryStringInfo(buf, col->key, col->key_len);
		first = false;
		if (isnull[att])
			appendStringInfoString(buf, "null");
		else
			append_value(buf, col, values[att]);
	}
	appendStringInfoChar(buf, '}');
	pfree(values);
	pfree(isnull);

	if (buf->len - start > ROW_JSON_FAST_LIMIT)
	{
		/* let jsonb apply its own limits, with its own errors */
		buf->len = start;
		buf->data[start] = '\0';
		append_through_to_jsonb(buf, to_jsonb, desc, tuple, ex);
	}
}
