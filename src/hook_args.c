/*-------------------------------------------------------------------------
 *
 * hook_args.c
 *	  Validation of the arguments of the hook functions.
 *
 * Every wrong argument is an ERROR that names the argument and says what
 * is allowed (docs/guarantees.md §6), raised before anything changes.
 * register_hook and alter_hook take a hook's settings in the same order
 * (CocoSetting), and coco_check_settings() checks them for both, so a
 * value is refused alike by each; only the hints differ, which say how
 * to ask for no value (NULL to one, clear to the other).
 *
 * Runs in: backends (the hook functions, hook_admin.c).
 *
 * Invariants:
 *	- the checks run as the caller, before the switch to the catalog's
 *	  owner, except coco_check_partition_family, which reads the catalog
 *	  as its owner, in SPI;
 *	- coco_check_collection locks the table as CREATE TRIGGER does
 *	  (ShareRowExclusiveLock), until the transaction ends;
 *	- a URL is parsed, never resolved: a host name is checked on each of
 *	  its addresses when the worker connects (network_guard.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include <curl/curl.h>

#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cocohooks.h"
#include "event_message.h"
#include "filter_compile.h"
#include "header_object.h"
#include "hook_args.h"
#include "network_guard.h"
#include "pg_compat.h"

/* The column of an open table's one-column primary key, or 0. */
static AttrNumber
primary_key_attnum(Relation rel)
{
	AttrNumber	attnum = 0;
	HeapTuple	idxtup;

	(void) RelationGetIndexList(rel);
	if (OidIsValid(rel->rd_pkindex))
	{
		idxtup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(rel->rd_pkindex));
		if (HeapTupleIsValid(idxtup))
		{
			Form_pg_index idx = (Form_pg_index) GETSTRUCT(idxtup);

			if (idx->indnkeyatts == 1)
				attnum = idx->indkey.values[0];
			ReleaseSysCache(idxtup);
		}
	}
	return attnum;
}

/* headers cocohooks sets itself, or that HTTP framing owns */
static const char *const reserved_headers[] = {
	"content-type", "user-agent", "x-hook-event", "webhook-id",
	"webhook-timestamp", "webhook-signature", "host", "content-length",
	"transfer-encoding", "connection", "expect", NULL
};

void
coco_require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

CocoEventKind
coco_check_event(const char *event)
{
	int			kind = coco_event_from_name(event);

	if (kind < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event \"%s\"", event),
				 errdetail("event must be one of pre_save, post_save, pre_delete or post_delete.")));
	return (CocoEventKind) kind;
}

/*
 * A URL whose host is a literal IP address the network guard would refuse
 * is refused now; a host name is checked on each address it resolves to,
 * when the worker connects.  host is as libcurl's URL parser gives it, so
 * numeric forms such as "http://2130706433/" arrive as dotted addresses.
 */
static void
check_literal_address(const char *url, const char *host)
{
	uint8		addr[16];
	int			family = coco_parse_ip(host, addr);
	const char *why;

	if (family != 0 && !coco_address_allowed(family, addr, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url \"%s\" points to a non-public address outside \"%s\"", url,
						"cocohooks.allowed_networks"),
				 errdetail("%s is %s, and not inside \"%s\".", host, why,
						   "cocohooks.allowed_networks"),
				 errhint("Use a public address, or ask a superuser to add its range to \"%s\".",
						 "cocohooks.allowed_networks")));
}

void
coco_check_url(const char *url)
{
	CURLU	   *cu;
	CURLUcode	rc;
	char	   *host = NULL;
	bool		scheme_ok;

	for (const char *p = url; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c <= 0x20 || c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid url \"%s\"", url),
					 errdetail("url must not contain spaces or control characters.")));
	}
	scheme_ok = pg_strncasecmp(url, "http://", 7) == 0 ||
		pg_strncasecmp(url, "https://", 8) == 0;
	if (!scheme_ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid url \"%s\"", url),
				 errdetail("url must begin with http:// or https://.")));
	if (strlen(url) > COCO_MAX_URL_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url is too long"),
				 errdetail("url must be at most %d bytes.", COCO_MAX_URL_LEN)));

	cu = curl_url();
	if (cu == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	rc = curl_url_set(cu, CURLUPART_URL, url, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(cu, CURLUPART_HOST, &host, 0);
	if (rc != CURLUE_OK || host == NULL || host[0] == '\0')
	{
		const char *why = rc != CURLUE_OK ? curl_url_strerror(rc) : "no host";

		curl_free(host);
		curl_url_cleanup(cu);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid url \"%s\"", url),
				 errdetail("url could not be parsed: %s.", why)));
	}
	check_literal_address(url, host);
	curl_free(host);
	curl_url_cleanup(cu);
}

static bool
is_token_char(unsigned char c)
{
	/* RFC 9110 tchar */
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One header of register_hook's headers: a token name, not ours, a string value without CR/LF. */
static void
check_header(const char *name_bytes, int name_len, JsonbValue *value, void *arg)
{
	int		   *total = (int *) arg;
	char	   *name = pnstrdup(name_bytes, name_len);

	if (name_len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid headers"),
				 errdetail("A header name must not be empty.")));
	for (int i = 0; i < name_len; i++)
		if (!is_token_char((unsigned char) name[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid header name \"%s\"", name),
					 errdetail("A header name may contain only letters, digits and !#$%%&'*+-.^_`|~.")));
	for (int r = 0; reserved_headers[r]; r++)
		if (pg_strcasecmp(name, reserved_headers[r]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header \"%s\" cannot be set in headers", name),
					 errdetail("cocohooks sets Content-Type, User-Agent, X-Hook-Event and the webhook-* headers itself, and HTTP framing headers are not allowed.")));
	if (value->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for header \"%s\"", name),
				 errdetail("Header values must be JSON strings.")));
	for (int i = 0; i < value->val.string.len; i++)
	{
		char		c = value->val.string.val[i];

		if (c == '\r' || c == '\n' || c == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for header \"%s\"", name),
					 errdetail("Header values must not contain CR or LF.")));
	}
	*total += name_len + 4 + value->val.string.len;
	pfree(name);
}

void
coco_check_headers(Jsonb *headers)
{
	int			total = 0;

	if (!coco_headers_walk(headers, check_header, &total))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid headers"),
				 errdetail("headers must be a JSON object of header names and string values, like {\"Authorization\": \"Bearer abc\"}.")));
	if (total > COCO_MAX_HEADERS_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers are too long"),
				 errdetail("All headers together must be at most %d bytes.", COCO_MAX_HEADERS_LEN)));
}

/*
 * A secret given as argument argname; null_allowed says whether NULL (no
 * signature) was an option, for the detail.
 */
void
coco_check_secret(const char *secret, const char *argname, bool null_allowed)
{
	char		key[COCO_MAX_KEY_LEN];

	if (coco_secret_decode(secret, key) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid secret"),
				 null_allowed ?
				 errdetail("%s must be \"whsec_\" followed by the base64 of a key of 1 to %d bytes, or NULL for unsigned deliveries.",
						   argname, COCO_MAX_KEY_LEN) :
				 errdetail("%s must be \"whsec_\" followed by the base64 of a key of 1 to %d bytes.",
						   argname, COCO_MAX_KEY_LEN)));
}

void
coco_check_range(const char *name, int value, int min, int max)
{
	if (value < min || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %d is out of range", name, value),
				 errdetail("%s must be between %d and %d.", name, min, max)));
}

/* max_per_second: a rate above zero, fractions allowed (0.5: one every 2 s). */
void
coco_check_max_per_second(float4 value)
{
	if (isnan(value) || value <= 0 || value > MAX_PER_SECOND)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_per_second %g is out of range", value),
				 errdetail("max_per_second must be greater than 0 and at most %g.",
						   MAX_PER_SECOND)));
}

/* batch_size: events in one request, 1 (each alone) to MAX_BATCH_SIZE. */
void
coco_check_batch_size(int value)
{
	if (value < 1 || value > MAX_BATCH_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size %d is out of range", value),
				 errdetail("batch_size must be between 1 and %d.", MAX_BATCH_SIZE),
				 errhint("A batch_size of 1 sends each event in a request of its own.")));
}

/*
 * batch_wait: how long a batch waits for more events after its first,
 * from 0 (what is at hand) to MAX_BATCH_WAIT_MS; no months or days, which
 * have no fixed length.
 */
void
coco_check_batch_wait(Interval *wait)
{
	if (INTERVAL_NOT_FINITE(wait) || wait->month != 0 || wait->day != 0 ||
		wait->time < 0 || wait->time > (int64) MAX_BATCH_WAIT_MS * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid batch_wait \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(wait)))),
				 errdetail("batch_wait must be between 0 and %d seconds.",
						   MAX_BATCH_WAIT_MS / 1000),
				 errhint("batch_wait is how long a batch waits for more events after its first; 0 sends the events at hand.")));
}

/*
 * retry_for: a finite interval greater than zero (NULL, for no time limit,
 * is not checked here).
 */
void
coco_check_retry_for(Interval *retry_for, CocoNoneBy none_by)
{
	Interval	zero = {0};

	if (INTERVAL_NOT_FINITE(retry_for) ||
		DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(retry_for),
										  IntervalPGetDatum(&zero))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid retry_for \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(retry_for)))),
				 errdetail("retry_for must be a finite interval greater than zero."),
				 none_by == COCO_NONE_BY_CLEAR ?
				 errhint("Name retry_for in clear to retry with no time limit.") :
				 errhint("Pass NULL to retry with no time limit.")));
}

/*
 * Checks that relid names a table the current user owns, with a primary key
 * of one column.  Locks it like CREATE TRIGGER does.
 */
void
coco_check_collection(Oid relid)
{
	char		relkind;
	Relation	rel;

	relkind = get_rel_relkind(relid);
	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("collection with OID %u does not exist", relid)));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("collection \"%s\" is not a table", get_rel_name(relid)),
				 errdetail("Hooks can be registered on tables and partitioned tables only.")));
	if (!coco_table_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind),
					   get_rel_name(relid));
	if (IsCatalogRelationOid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("collection \"%s\" is a system catalog", get_rel_name(relid)),
				 errdetail("Hooks can be registered on user tables only.")));

	rel = table_open(relid, ShareRowExclusiveLock);
	if (primary_key_attnum(rel) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("collection \"%s\" has no single-column primary key",
						RelationGetRelationName(rel)),
				 errdetail("Hook payloads name each document by its primary key, so a collection needs a primary key of exactly one column."),
				 errhint("Add one with ALTER TABLE ... ADD PRIMARY KEY.")));
	table_close(rel, NoLock);
}

/*
 * A partitioned table's hooks fire for the rows of all its partitions, so a
 * table and its ancestors or descendants cannot both have hooks: each row
 * belongs to one collection.  Runs as owner, in SPI.
 */
void
coco_check_partition_family(Oid relid)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	Oid			types[1] = {OIDOID};
	Oid			other;
	bool		isnull;

	if (SPI_execute_with_args("SELECT h.collection::pg_catalog.oid FROM cocohooks.hooks h "
							  "WHERE h.collection::pg_catalog.oid <> $1 AND h.collection::pg_catalog.oid IN "
							  "(SELECT relid FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.regclass) "
							  " UNION ALL SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)) "
							  "LIMIT 1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	if (SPI_processed == 0)
		return;
	other = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("collection \"%s\" is in the same partition tree as \"%s\", which has hooks",
					get_rel_name(relid), get_rel_name(other)),
			 errdetail("A partitioned table's hooks fire for the rows of all its partitions, so only one table of a partition tree can have hooks."),
			 errhint("Register all hooks of the tree on one table, usually the partitioned table.")));
}

/*
 * columns and exclude_columns: a non-empty list of distinct names of the
 * table's columns, no NULLs; the primary key cannot be excluded (it names
 * the document).
 */
void
coco_check_column_list(Oid relid, ArrayType *names, const char *argname,
					   bool exclude, CocoNoneBy none_by)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	   *relname = get_rel_name(relid);
	AttrNumber	pk_attnum;
	Relation	rel;

	/* locked already, by coco_check_collection */
	rel = table_open(relid, AccessShareLock);
	pk_attnum = primary_key_attnum(rel);
	table_close(rel, NoLock);

	if (ARR_NDIM(names) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array of column names", argname)));
	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name at least one column", argname),
				 none_by == COCO_NONE_BY_CLEAR ?
				 errhint("Name %s in clear for %s.", argname,
						 exclude ? "no exclusion" : "a hook that fires on any update") :
				 errhint("Pass NULL (the default) for %s.",
						 exclude ? "no exclusion" : "hooks that fire on any update")));
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		AttrNumber	attnum;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", argname)));
		name = TextDatumGetCString(elems[i]);
		for (int j = 0; j < i; j++)
			if (strcmp(name, TextDatumGetCString(elems[j])) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s names column \"%s\" more than once", argname, name)));
		attnum = get_attnum(relid, name);
		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s names column \"%s\", which collection \"%s\" does not have",
							argname, name, relname),
					 errdetail("Column names are matched exactly, as quoted identifiers are.")));
		if (exclude && attnum == pk_attnum)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s cannot leave out \"%s\", the primary key of collection \"%s\"",
							argname, name, relname),
					 errdetail("A document is named by its primary key in every payload.")));
	}
}

/* ordering: 'document' or 'none'. */
void
coco_check_ordering(const char *ordering)
{
	if (strcmp(ordering, "document") != 0 && strcmp(ordering, "none") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ordering \"%s\"", ordering),
				 errdetail("ordering must be 'document' (a document's events one at a time, in commit order) or 'none'.")));
}

const CocoSettingInfo coco_settings[COCO_NUM_SETTINGS] = {
	[COCO_SETTING_URL] = {"url", TEXTOID, false},
	[COCO_SETTING_HEADERS] = {"headers", JSONBOID, false},
	[COCO_SETTING_SECRET] = {"secret", TEXTOID, true},
	[COCO_SETTING_TIMEOUT_MS] = {"timeout_ms", INT4OID, false},
	[COCO_SETTING_MAX_RETRIES] = {"max_retries", INT4OID, true},
	[COCO_SETTING_COLUMNS] = {"columns", TEXTARRAYOID, true},
	[COCO_SETTING_EXCLUDE_COLUMNS] = {"exclude_columns", TEXTARRAYOID, true},
	[COCO_SETTING_ORDERING] = {"ordering", TEXTOID, false},
	[COCO_SETTING_RETRY_FOR] = {"retry_for", INTERVALOID, true},
	[COCO_SETTING_FILTER] = {"filter", TEXTOID, true},
	[COCO_SETTING_MAX_PER_SECOND] = {"max_per_second", FLOAT4OID, true},
	[COCO_SETTING_MAX_CONCURRENT] = {"max_concurrent", INT4OID, true},
	[COCO_SETTING_BATCH_SIZE] = {"batch_size", INT4OID, false},
	[COCO_SETTING_BATCH_WAIT] = {"batch_wait", INTERVALOID, false},
};

/*
 * Whether setting s is given (not NULL) among fcinfo's arguments, the
 * settings being those from first on; its value in *value if so.
 */
static bool
setting_given(FunctionCallInfo fcinfo, int first, CocoSetting s, CocoNoneBy none_by,
			  Datum *value)
{
	int			argno = coco_setting_argno(first, s, none_by);

	if (argno >= PG_NARGS() || PG_ARGISNULL(argno))
		return false;
	*value = PG_GETARG_DATUM(argno);
	return true;
}

/* Whether setting s is given: the SQL function has it, and it is not NULL. */
bool
coco_setting_given(FunctionCallInfo fcinfo, int first, CocoSetting s, CocoNoneBy none_by)
{
	Datum		v;

	return setting_given(fcinfo, first, s, none_by, &v);
}

/*
 * Checks every setting argument given (not NULL) but the column lists, in
 * argument order; the settings are fcinfo's arguments from first on, as
 * many as the SQL function has (fewer for an older schema's).  Which may
 * be NULL is the caller's business.
 */
void
coco_check_settings(FunctionCallInfo fcinfo, int first, CocoNoneBy none_by)
{
	Datum		v;

	if (setting_given(fcinfo, first, COCO_SETTING_URL, none_by, &v))
		coco_check_url(TextDatumGetCString(v));
	if (setting_given(fcinfo, first, COCO_SETTING_HEADERS, none_by, &v))
		coco_check_headers(DatumGetJsonbP(v));
	if (setting_given(fcinfo, first, COCO_SETTING_SECRET, none_by, &v))
		coco_check_secret(TextDatumGetCString(v), "secret", none_by == COCO_NONE_BY_NULL);
	if (setting_given(fcinfo, first, COCO_SETTING_TIMEOUT_MS, none_by, &v))
		coco_check_range("timeout_ms", DatumGetInt32(v), 1, MAX_TIMEOUT_MS);
	if (setting_given(fcinfo, first, COCO_SETTING_MAX_RETRIES, none_by, &v))
		coco_check_range("max_retries", DatumGetInt32(v), 0, MAX_RETRIES);
	if (setting_given(fcinfo, first, COCO_SETTING_ORDERING, none_by, &v))
		coco_check_ordering(TextDatumGetCString(v));
	if (setting_given(fcinfo, first, COCO_SETTING_RETRY_FOR, none_by, &v))
		coco_check_retry_for(DatumGetIntervalP(v), none_by);
	if (setting_given(fcinfo, first, COCO_SETTING_MAX_PER_SECOND, none_by, &v))
		coco_check_max_per_second(DatumGetFloat4(v));
	if (setting_given(fcinfo, first, COCO_SETTING_MAX_CONCURRENT, none_by, &v))
		coco_check_range("max_concurrent", DatumGetInt32(v), 1, MAX_CONCURRENT);
	if (setting_given(fcinfo, first, COCO_SETTING_BATCH_SIZE, none_by, &v))
		coco_check_batch_size(DatumGetInt32(v));
	if (setting_given(fcinfo, first, COCO_SETTING_BATCH_WAIT, none_by, &v))
		coco_check_batch_wait(DatumGetIntervalP(v));
}

/*
 * The settings checked against the collection: columns and exclude_columns
 * name its columns; the filter (filter_compile.c), compiled with the
 * caller's search_path, is returned for the caller to store, NULL if none
 * was given.
 */
Node *
coco_check_collection_settings(FunctionCallInfo fcinfo, int first, Oid relid,
							   CocoEventKind event, CocoNoneBy none_by)
{
	Datum		v;

	if (setting_given(fcinfo, first, COCO_SETTING_COLUMNS, none_by, &v))
		coco_check_column_list(relid, DatumGetArrayTypeP(v), "columns", false, none_by);
	if (setting_given(fcinfo, first, COCO_SETTING_EXCLUDE_COLUMNS, none_by, &v))
		coco_check_column_list(relid, DatumGetArrayTypeP(v), "exclude_columns", true,
							   none_by);
	if (setting_given(fcinfo, first, COCO_SETTING_FILTER, none_by, &v))
		return coco_filter_compile(relid, event, TextDatumGetCString(v));
	return NULL;
}
