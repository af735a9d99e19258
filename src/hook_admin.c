/*-------------------------------------------------------------------------
 *
 * hook_admin.c
 *	  The SQL functions that manage hooks: register_hook, unregister_hook,
 *	  enable_hook, disable_hook; the check run by CREATE EXTENSION; and the
 *	  statement trigger that tells every backend's hook cache when
 *	  cocohooks.hooks changes.
 *
 * Callers need only own the collection.  The catalog itself is writable by
 * the extension's owner alone, so after validating every argument and
 * checking ownership as the caller, the catalog change and the collection's
 * triggers are made as the owner of cocohooks.hooks (a security-restricted
 * user switch, as REFRESH MATERIALIZED VIEW does).
 *
 * Each collection has at most two triggers calling cocohooks.row_trigger():
 * a BEFORE one for its pre_* hooks and an AFTER one for its post_* hooks,
 * covering just the operations those hooks need.  sync_triggers() makes
 * them match the catalog after every change, and drops them when no hook
 * is left.  The names begin with a non-ASCII letter so that the BEFORE
 * trigger runs after every trigger with an ASCII name.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include <curl/curl.h>

#include "network_guard.h"
#include "signing_keys.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(cocohooks_register_hook);
PG_FUNCTION_INFO_V1(cocohooks_unregister_hook);
PG_FUNCTION_INFO_V1(cocohooks_enable_hook);
PG_FUNCTION_INFO_V1(cocohooks_rotate_secret);
PG_FUNCTION_INFO_V1(cocohooks_disable_hook);
PG_FUNCTION_INFO_V1(cocohooks_hooks_changed);
PG_FUNCTION_INFO_V1(cocohooks_check_install);

/* trigger names, in UTF-8; converted to the database encoding when used */
#define PRE_TRIGGER_NAME	"\xc3\xbf_cocohooks_pre"
#define POST_TRIGGER_NAME	"\xc3\xbf_cocohooks_post"

#define MAX_TIMEOUT_MS		15000
#define MAX_RETRIES			20

/* headers cocohooks sets itself, or that HTTP framing owns */
static const char *const reserved_headers[] = {
	"content-type", "user-agent", "x-hook-event", "webhook-id",
	"webhook-timestamp", "webhook-signature", "host", "content-length",
	"transfer-encoding", "connection", "expect", NULL
};

static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

static CocoEventKind
check_event(const char *event)
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
				 errmsg("url \"%s\" points to an address deliveries may not connect to", url),
				 errdetail("%s is %s, and not inside \"%s\".", host, why,
						   "cocohooks.allowed_networks"),
				 errhint("Use a public address, or ask a superuser to add its range to \"%s\".",
						 "cocohooks.allowed_networks")));
}

static void
check_url(const char *url)
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

static void
check_headers(Jsonb *headers)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			total = 0;
	char	   *name = NULL;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid headers"),
				 errdetail("headers must be a JSON object of header names and string values, like {\"Authorization\": \"Bearer abc\"}.")));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			if (v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid headers"),
						 errdetail("A header name must not be empty.")));
			for (int i = 0; i < v.val.string.len; i++)
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
			total += v.val.string.len + 4;
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for header \"%s\"", name),
						 errdetail("Header values must be JSON strings.")));
			for (int i = 0; i < v.val.string.len; i++)
			{
				char		c = v.val.string.val[i];

				if (c == '\r' || c == '\n' || c == '\0')
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("invalid value for header \"%s\"", name),
							 errdetail("Header values must not contain CR or LF.")));
			}
			total += v.val.string.len;
		}
	}
	if (total > COCO_MAX_HEADERS_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers are too long"),
				 errdetail("All headers together must be at most %d bytes.", COCO_MAX_HEADERS_LEN)));
}

static void
check_secret(const char *secret)
{
	char		key[COCO_MAX_KEY_LEN];

	if (coco_secret_decode(secret, key) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid secret"),
				 errdetail("secret must be \"whsec_\" followed by the base64 of a key of 1 to %d bytes, or NULL for unsigned deliveries.",
						   COCO_MAX_KEY_LEN)));
}

static void
check_range(const char *name, int value, int min, int max)
{
	if (value < min || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %d is out of range", name, value),
				 errdetail("%s must be between %d and %d.", name, min, max)));
}

/*
 * Checks that relid names a table the current user owns, with a primary key
 * of one column.  Locks it like CREATE TRIGGER does.
 */
static void
check_collection(Oid relid)
{
	char		relkind;
	Relation	rel;
	HeapTuple	idxtup;
	bool		single = false;

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
	(void) RelationGetIndexList(rel);
	if (OidIsValid(rel->rd_pkindex))
	{
		idxtup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(rel->rd_pkindex));
		if (HeapTupleIsValid(idxtup))
		{
			single = ((Form_pg_index) GETSTRUCT(idxtup))->indnkeyatts == 1 &&
				((Form_pg_index) GETSTRUCT(idxtup))->indkey.values[0] > 0;
			ReleaseSysCache(idxtup);
		}
	}
	if (!single)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("collection \"%s\" has no single-column primary key",
						RelationGetRelationName(rel)),
				 errdetail("Hook payloads name each document by its primary key, so a collection needs a primary key of exactly one column."),
				 errhint("Add one with ALTER TABLE ... ADD PRIMARY KEY.")));
	table_close(rel, NoLock);
}

/* Oid of cocohooks.hooks; errors if the extension is not installed here. */
static Oid
hooks_catalog(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", false);
	Oid			relid = get_relname_relid("hooks", nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks is not installed in this database"),
				 errhint("Run CREATE EXTENSION cocohooks.")));
	return relid;
}

/* Becomes the owner of the catalog for the catalog change; connects SPI. */
void
coco_begin_as_owner(CocoAsOwner *st)
{
	Oid			owner;
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(hooks_catalog()));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for cocohooks.hooks");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&st->save_userid, &st->save_sec_context);
	SetUserIdAndSecContext(owner, st->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	st->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
coco_end_as_owner(CocoAsOwner *st)
{
	SPI_finish();
	AtEOXact_GUC(true, st->save_nestlevel);
	SetUserIdAndSecContext(st->save_userid, st->save_sec_context);
}

static char *
trigger_name(const char *utf8)
{
	return pg_any_to_server(utf8, strlen(utf8), PG_UTF8);
}

/* Current operations (TRIGGER_TYPE_* bits) of one of our triggers, or 0. */
static int16
existing_trigger_ops(Oid relid, const char *name)
{
	Datum		args[2] = {ObjectIdGetDatum(relid), CStringGetDatum(name)};
	Oid			types[2] = {OIDOID, CSTRINGOID};
	int16		ops = 0;

	if (SPI_execute_with_args("SELECT tgtype, tgparentid <> 0 FROM pg_catalog.pg_trigger "
							  "WHERE tgrelid = $1 AND tgname = $2::pg_catalog.name",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read triggers");
	if (SPI_processed == 1)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("collection \"%s\" is a partition of a table that has hooks",
							get_rel_name(relid)),
					 errdetail("The hooks of a partitioned table already fire for the rows of its partitions."),
					 errhint("Register the hook on the partitioned table.")));

		ops = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
		ops &= (TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE);
		if (ops == 0)
			ops = -1;			/* exists, but not as we would make it */
	}
	return ops;
}

static void
set_trigger(Oid relid, const char *name, bool before, int16 want)
{
	int16		have = existing_trigger_ops(relid, name);
	char	   *qualified;
	StringInfoData sql;

	if (have == want)
		return;

	qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										   get_rel_name(relid));
	initStringInfo(&sql);
	if (have != 0)
	{
		appendStringInfo(&sql, "DROP TRIGGER %s ON %s",
						 quote_identifier(name), qualified);
		if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not drop trigger");
	}
	if (want == 0)
		return;

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s %s ", quote_identifier(name),
					 before ? "BEFORE" : "AFTER");
	if (want & TRIGGER_TYPE_INSERT)
		appendStringInfoString(&sql, "INSERT OR ");
	if (want & TRIGGER_TYPE_UPDATE)
		appendStringInfoString(&sql, "UPDATE OR ");
	if (want & TRIGGER_TYPE_DELETE)
		appendStringInfoString(&sql, "DELETE OR ");
	sql.len -= 4;				/* the last " OR " */
	sql.data[sql.len] = '\0';
	appendStringInfo(&sql, " ON %s FOR EACH ROW EXECUTE FUNCTION cocohooks.row_trigger()",
					 qualified);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create trigger");
}

/* Makes the collection's triggers match its hooks.  Runs as owner, in SPI. */
static void
sync_triggers(Oid relid)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	Oid			types[1] = {OIDOID};
	int16		pre = 0;
	int16		post = 0;

	if (SPI_execute_with_args("SELECT DISTINCT event FROM cocohooks.hooks "
							  "WHERE collection = $1::pg_catalog.regclass",
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *event = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		switch (coco_event_from_name(event))
		{
			case COCO_PRE_SAVE:
				pre |= TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
				break;
			case COCO_PRE_DELETE:
				pre |= TRIGGER_TYPE_DELETE;
				break;
			case COCO_POST_SAVE:
				post |= TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
				break;
			case COCO_POST_DELETE:
				post |= TRIGGER_TYPE_DELETE;
				break;
			default:
				break;
		}
	}
	set_trigger(relid, trigger_name(PRE_TRIGGER_NAME), true, pre);
	set_trigger(relid, trigger_name(POST_TRIGGER_NAME), false, post);
}

/*
 * A partitioned table's hooks fire for the rows of all its partitions, so a
 * table and its ancestors or descendants cannot both have hooks: each row
 * belongs to one collection.  Runs as owner, in SPI.
 */
static void
check_partition_family(Oid relid)
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

Datum
cocohooks_register_hook(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *event;
	char	   *url;
	Jsonb	   *headers;
	char	   *secret = NULL;
	int32		timeout_ms;
	int32		max_retries;
	CocoAsOwner st;
	int64		id;
	bool		isnull;
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Oid			types[7] = {OIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID};

	coco_require_preload();
	require_arg(fcinfo, 0, "collection");
	require_arg(fcinfo, 1, "event");
	require_arg(fcinfo, 2, "url");
	require_arg(fcinfo, 3, "headers");
	require_arg(fcinfo, 5, "timeout_ms");
	require_arg(fcinfo, 6, "max_retries");

	relid = PG_GETARG_OID(0);
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	url = text_to_cstring(PG_GETARG_TEXT_PP(2));
	headers = PG_GETARG_JSONB_P(3);
	if (!PG_ARGISNULL(4))
		secret = text_to_cstring(PG_GETARG_TEXT_PP(4));
	timeout_ms = PG_GETARG_INT32(5);
	max_retries = PG_GETARG_INT32(6);

	check_event(event);
	check_url(url);
	check_headers(headers);
	if (secret)
		check_secret(secret);
	check_range("timeout_ms", timeout_ms, 1, MAX_TIMEOUT_MS);
	check_range("max_retries", max_retries, 0, MAX_RETRIES);
	check_collection(relid);

	args[0] = ObjectIdGetDatum(relid);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = PG_GETARG_DATUM(3);
	args[4] = secret ? PG_GETARG_DATUM(4) : (Datum) 0;
	if (!secret)
		nulls[4] = 'n';
	args[5] = Int32GetDatum(timeout_ms);
	args[6] = Int32GetDatum(max_retries);

	coco_begin_as_owner(&st);
	check_partition_family(relid);
	/* no row limit: a limited INSERT would not fire its statement trigger */
	if (SPI_execute_with_args("INSERT INTO cocohooks.hooks "
							  "(collection, event, url, headers, secret, timeout_ms, max_retries) "
							  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7) RETURNING id",
							  7, types, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into cocohooks.hooks");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	sync_triggers(relid);
	coco_end_as_owner(&st);

	coco_warn_if_wal_unavailable();
	PG_RETURN_INT64(id);
}

/*
 * The collection of a hook, looked up as the catalog owner; InvalidOid if
 * there is no such hook.  Errors unless the caller owns the collection.
 */
Oid
coco_hook_collection_for_change(int64 hook_id, CocoAsOwner *st)
{
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};
	Oid			relid;
	bool		isnull;

	if (SPI_execute_with_args("SELECT collection FROM cocohooks.hooks WHERE id = $1 FOR UPDATE",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	if (SPI_processed == 0)
		return InvalidOid;
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!coco_table_ownercheck(relid, st->save_userid))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	return relid;
}

static int64
hook_id_arg(FunctionCallInfo fcinfo)
{
	coco_require_preload();
	require_arg(fcinfo, 0, "hook_id");
	return PG_GETARG_INT64(0);
}

Datum
cocohooks_unregister_hook(PG_FUNCTION_ARGS)
{
	int64		hook_id = hook_id_arg(fcinfo);
	CocoAsOwner st;
	Oid			relid;
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};

	coco_begin_as_owner(&st);
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (OidIsValid(relid))
	{
		/* lock the table as DROP TRIGGER will, before touching the catalog */
		LockRelationOid(relid, ShareRowExclusiveLock);
		if (SPI_execute_with_args("DELETE FROM cocohooks.hooks WHERE id = $1",
								  1, types, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from cocohooks.hooks");
		sync_triggers(relid);
	}
	coco_end_as_owner(&st);
	PG_RETURN_BOOL(OidIsValid(relid));
}

/* True if the catalog has this column (a 0.1.0 one lacks 0.2.0's). */
static bool
hooks_has_column(const char *name)
{
	return get_attnum(hooks_catalog(), name) != InvalidAttrNumber;
}

/*
 * Enables or disables a hook; either way the reason a 410 Gone left in
 * disabled_reason goes (a hook disabled by hand has none).
 */
static bool
set_enabled(int64 hook_id, bool enabled)
{
	CocoAsOwner st;
	Oid			relid;
	Datum		args[2] = {Int64GetDatum(hook_id), BoolGetDatum(enabled)};
	Oid			types[2] = {INT8OID, BOOLOID};
	bool		has_reason = hooks_has_column("disabled_reason");

	coco_begin_as_owner(&st);
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (OidIsValid(relid) &&
		SPI_execute_with_args(has_reason ?
							  "UPDATE cocohooks.hooks SET enabled = $2, disabled_reason = NULL WHERE id = $1" :
							  "UPDATE cocohooks.hooks SET enabled = $2 WHERE id = $1",
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.hooks");
	coco_end_as_owner(&st);
	return OidIsValid(relid);
}

/*
 * rotate_secret(hook_id, new_secret, overlap): the new secret signs from
 * now on; the old one also signs until the overlap ends, so receivers can
 * switch at any time within it.  A rotation during another's overlap keeps
 * only the secret it replaces as the previous one.
 */
Datum
cocohooks_rotate_secret(PG_FUNCTION_ARGS)
{
	int64		hook_id = hook_id_arg(fcinfo);
	char	   *secret;
	Interval   *overlap;
	CocoAsOwner st;
	Oid			relid;
	Datum		args[3];
	Oid			types[3] = {INT8OID, TEXTOID, INTERVALOID};
	Interval	zero = {0};

	require_arg(fcinfo, 1, "new_secret");
	require_arg(fcinfo, 2, "overlap");
	secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	overlap = PG_GETARG_INTERVAL_P(2);
	check_secret(secret);
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(overlap),
										  IntervalPGetDatum(&zero))) < 0 ||
		INTERVAL_NOT_FINITE(overlap))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid overlap \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(overlap)))),
				 errdetail("overlap must be a finite interval of zero or more.")));
	if (!hooks_has_column("previous_secret"))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks.rotate_secret needs the 0.2.0 catalog"),
				 errhint("Run ALTER EXTENSION cocohooks UPDATE.")));

	args[0] = Int64GetDatum(hook_id);
	args[1] = CStringGetTextDatum(secret);
	args[2] = IntervalPGetDatum(overlap);
	coco_begin_as_owner(&st);
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (OidIsValid(relid) &&
		SPI_execute_with_args("UPDATE cocohooks.hooks SET "
							  "previous_secret = CASE WHEN $3 > '0' AND secret IS DISTINCT FROM $2 THEN secret END, "
							  "previous_secret_until = CASE WHEN $3 > '0' AND secret IS DISTINCT FROM $2 "
							  "AND secret IS NOT NULL THEN pg_catalog.now() + $3 END, "
							  "secret = $2 WHERE id = $1",
							  3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.hooks");
	coco_end_as_owner(&st);
	PG_RETURN_BOOL(OidIsValid(relid));
}

Datum
cocohooks_enable_hook(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(set_enabled(hook_id_arg(fcinfo), true));
}

Datum
cocohooks_disable_hook(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(set_enabled(hook_id_arg(fcinfo), false));
}

/*
 * Statement trigger on cocohooks.hooks: any change, however made (our
 * functions, a superuser's UPDATE, a restore's COPY), invalidates the hook
 * caches of every backend when the transaction commits.
 */
Datum
cocohooks_hooks_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.hooks_changed() was not called by the trigger manager")));
	CacheInvalidateRelcache(td->tg_relation);
	/* the worker signs with the secrets in force: it reads them again */
	coco_signing_keys_note_change();
	return PointerGetDatum(NULL);
}

/* Run by the install script: refuse a server or database that cannot work. */
Datum
cocohooks_check_install(PG_FUNCTION_ARGS)
{
	char	   *dbname = get_database_name(MyDatabaseId);

	coco_require_preload();
	coco_warn_if_wal_unavailable();
	coco_extension_changed();
	if (strcmp(dbname, cocohooks_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks can only be installed in database \"%s\"",
						cocohooks_database),
				 errdetail("Its background worker serves the one database named by \"%s\".",
						   "cocohooks.database"),
				 errhint("Create the extension in database \"%s\", or set \"%s\" to \"%s\" and restart the server.",
						 cocohooks_database, "cocohooks.database", dbname)));
	PG_RETURN_VOID();
}
