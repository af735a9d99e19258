/*-------------------------------------------------------------------------
 *
 * hook_admin.c
 *	  The SQL functions that manage hooks: register_hook, alter_hook,
 *	  unregister_hook, enable_hook, disable_hook and rotate_secret; the
 *	  check run by CREATE EXTENSION; and the statement trigger that tells
 *	  every backend's hook cache, and the worker's signing keys, when
 *	  cocohooks.hooks changes.
 *
 * Callers need only own the collection.  The catalog itself is writable by
 * the extension's owner alone, so after validating every argument
 * (hook_args.c) and checking ownership as the caller, the catalog change
 * and the collection's triggers (hook_triggers.c) are made as the owner of
 * cocohooks.hooks (a security-restricted user switch, as REFRESH
 * MATERIALIZED VIEW does, as_owner.c).
 *
 * Runs in: backends (the SQL functions, the install script's check).  The
 * statement trigger runs in any process whose transaction changes
 * cocohooks.hooks: backends, and the worker when it disables a hook whose
 * receiver answered 410 Gone (delivery_log.c).
 *
 * Invariants:
 *	- every argument, and the caller's ownership of the collection, is
 *	  checked before the catalog changes; a hook's row is locked (FOR
 *	  UPDATE) before it is changed;
 *	- the catalog and the collection's triggers change in the caller's
 *	  transaction, and commit or roll back together;
 *	- other backends' hook caches and the worker's signing keys learn of
 *	  a change when it commits, never before;
 *	- a 0.1.0 catalog, before ALTER EXTENSION UPDATE, is still served: the
 *	  functions look for the columns they need (rotate_secret refuses it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "as_owner.h"
#include "extension_watch.h"
#include "filter_compile.h"
#include "hook_admin.h"
#include "hook_args.h"
#include "hook_triggers.h"
#include "pg_compat.h"
#include "settings.h"
#include "signing_keys.h"

PG_FUNCTION_INFO_V1(cocohooks_register_hook);
PG_FUNCTION_INFO_V1(cocohooks_unregister_hook);
PG_FUNCTION_INFO_V1(cocohooks_enable_hook);
PG_FUNCTION_INFO_V1(cocohooks_rotate_secret);
PG_FUNCTION_INFO_V1(cocohooks_alter_hook);
PG_FUNCTION_INFO_V1(cocohooks_disable_hook);
PG_FUNCTION_INFO_V1(cocohooks_hooks_changed);
PG_FUNCTION_INFO_V1(cocohooks_check_install);

Datum
cocohooks_register_hook(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *event;
	char	   *secret = NULL;
	int32		timeout_ms;
	bool		retries_limited;
	CocoAsOwner st;
	int64		id;
	bool		isnull;
	Datum		args[16];
	char		nulls[16] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
	' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Oid			types[16] = {OIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTOID, INTERVALOID, TEXTOID, FLOAT4OID, INT4OID,
	INT4OID, INTERVALOID};

	/*
	 * The SQL function of an older schema, until ALTER EXTENSION UPDATE, has
	 * fewer arguments: seven in 0.1.0, ten in 0.2.0 (whose catalog has no
	 * retry_for and needs a max_retries), fourteen in 0.3.0 before batches.
	 */
	bool		v02 = PG_NARGS() >= 10;
	bool		v03 = PG_NARGS() >= 14;
	bool		batches = PG_NARGS() >= 16;
	int			nargs = batches ? 16 : v03 ? 14 : v02 ? 10 : 7;
	ArrayType  *columns = NULL;
	ArrayType  *exclude = NULL;
	char	   *ordering = "document";
	Interval   *retry_for = NULL;
	Node	   *filter = NULL;

	coco_require_preload();
	coco_require_arg(fcinfo, 0, "collection");
	coco_require_arg(fcinfo, 1, "event");
	coco_require_arg(fcinfo, 2, "url");
	coco_require_arg(fcinfo, 3, "headers");
	coco_require_arg(fcinfo, 5, "timeout_ms");
	if (!v03)
		coco_require_arg(fcinfo, 6, "max_retries");
	if (v02)
		coco_require_arg(fcinfo, 9, "ordering");
	if (batches)
	{
		coco_require_arg(fcinfo, 14, "batch_size");
		coco_require_arg(fcinfo, 15, "batch_wait");
	}

	relid = PG_GETARG_OID(0);
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(4))
		secret = text_to_cstring(PG_GETARG_TEXT_PP(4));
	timeout_ms = PG_GETARG_INT32(5);
	retries_limited = !PG_ARGISNULL(6);
	if (v02)
	{
		if (!PG_ARGISNULL(7))
			columns = PG_GETARG_ARRAYTYPE_P(7);
		if (!PG_ARGISNULL(8))
			exclude = PG_GETARG_ARRAYTYPE_P(8);
		ordering = text_to_cstring(PG_GETARG_TEXT_PP(9));
	}
	if (v03 && !PG_ARGISNULL(10))
		retry_for = PG_GETARG_INTERVAL_P(10);

	/* the settings are arguments 2 on, in alter_hook's order (hook_args.h) */
	coco_check_event(event);
	coco_check_settings(fcinfo, 2, COCO_NONE_BY_NULL);
	coco_check_collection(relid);
	/* the filter with the caller's search_path: it names what the caller sees */
	filter = coco_check_collection_settings(fcinfo, 2, relid, coco_event_from_name(event),
											COCO_NONE_BY_NULL);

	args[0] = ObjectIdGetDatum(relid);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = PG_GETARG_DATUM(3);
	args[4] = secret ? PG_GETARG_DATUM(4) : (Datum) 0;
	if (!secret)
		nulls[4] = 'n';
	args[5] = Int32GetDatum(timeout_ms);
	args[6] = retries_limited ? PG_GETARG_DATUM(6) : (Datum) 0;
	nulls[6] = retries_limited ? ' ' : 'n';
	args[7] = columns ? PointerGetDatum(columns) : (Datum) 0;
	nulls[7] = columns ? ' ' : 'n';
	args[8] = exclude ? PointerGetDatum(exclude) : (Datum) 0;
	nulls[8] = exclude ? ' ' : 'n';
	args[9] = CStringGetTextDatum(ordering);
	args[10] = retry_for ? IntervalPGetDatum(retry_for) : (Datum) 0;
	nulls[10] = retry_for ? ' ' : 'n';
	for (int i = 12; i < 14; i++)
	{
		args[i] = v03 ? PG_GETARG_DATUM(i) : (Datum) 0;
		nulls[i] = v03 && !PG_ARGISNULL(i) ? ' ' : 'n';
	}
	if (batches)
	{
		args[14] = PG_GETARG_DATUM(14);
		args[15] = PG_GETARG_DATUM(15);
	}

	coco_begin_as_owner(&st);
	/* stored with every name outside pg_catalog qualified (filter_compile.c) */
	args[11] = filter ? CStringGetTextDatum(coco_filter_deparse(filter, relid)) : (Datum) 0;
	nulls[11] = filter ? ' ' : 'n';
	coco_check_partition_family(relid);
	/* no row limit: a limited INSERT would not fire its statement trigger */
	if (SPI_execute_with_args(batches ?
							  "INSERT INTO cocohooks.hooks "
							  "(collection, event, url, headers, secret, timeout_ms, max_retries, "
							  "columns, exclude_columns, ordering, retry_for, filter, "
							  "max_per_second, max_concurrent, batch_size, batch_wait) "
							  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
							  "$12, $13, $14, $15, $16) "
							  "RETURNING id" :
							  v03 ?
							  "INSERT INTO cocohooks.hooks "
							  "(collection, event, url, headers, secret, timeout_ms, max_retries, "
							  "columns, exclude_columns, ordering, retry_for, filter, "
							  "max_per_second, max_concurrent) "
							  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
							  "$12, $13, $14) "
							  "RETURNING id" :
							  v02 ?
							  "INSERT INTO cocohooks.hooks "
							  "(collection, event, url, headers, secret, timeout_ms, max_retries, "
							  "columns, exclude_columns, ordering) "
							  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id" :
							  "INSERT INTO cocohooks.hooks "
							  "(collection, event, url, headers, secret, timeout_ms, max_retries) "
							  "VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7) RETURNING id",
							  nargs, types, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into cocohooks.hooks");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	coco_sync_triggers(relid);
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

/* The event of a hook coco_hook_collection_for_change() found, as the owner. */
static CocoEventKind
hook_event(int64 hook_id)
{
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};
	bool		isnull;

	if (SPI_execute_with_args("SELECT event FROM cocohooks.hooks WHERE id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the event of hook %lld", (long long) hook_id);
	return coco_event_from_name(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc,
																  1, &isnull)));
}

static int64
hook_id_arg(FunctionCallInfo fcinfo)
{
	coco_require_preload();
	coco_require_arg(fcinfo, 0, "hook_id");
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
		coco_sync_triggers(relid);
	}
	coco_end_as_owner(&st);
	PG_RETURN_BOOL(OidIsValid(relid));
}

/* True if the catalog has this column (a 0.1.0 one lacks 0.2.0's). */
static bool
hooks_has_column(const char *name)
{
	return get_attnum(coco_hooks_catalog(), name) != InvalidAttrNumber;
}

/*
 * Forgets since when the hook has been failing (cocohooks.hook_failing,
 * failing_hooks.c): the worker starts a fresh clock at its next failure.
 * As the catalog's owner, in SPI.
 */
static void
forget_failing(int64 hook_id)
{
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};

	if (!OidIsValid(get_relname_relid("hook_failing", get_rel_namespace(coco_hooks_catalog()))))
		return;
	if (SPI_execute_with_args("DELETE FROM cocohooks.hook_failing WHERE hook_id = $1",
							  1, types, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from cocohooks.hook_failing");
}

/*
 * Enables or disables a hook; either way the reason the worker left in
 * disabled_reason goes (a hook disabled by hand has none).  A hook enabled
 * starts a fresh clock of failures.
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
	if (OidIsValid(relid) && enabled)
		forget_failing(hook_id);
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

	coco_require_arg(fcinfo, 1, "new_secret");
	coco_require_arg(fcinfo, 2, "overlap");
	secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	overlap = PG_GETARG_INTERVAL_P(2);
	coco_check_secret(secret, "new_secret", false);
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

/* alter_hook's arguments: hook_id, the settings (hook_args.h), clear */
#define ALTER_FIRST_SETTING	1
#define ALTER_CLEAR_ARG		(ALTER_FIRST_SETTING + COCO_SETTINGS_BEFORE_CLEAR)

/*
 * The settings alter_hook's clear names, in cleared[]: nullable ones only,
 * none also given a value.
 */
static void
read_clear(FunctionCallInfo fcinfo, bool *cleared)
{
	ArrayType  *names;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData nullable;

	memset(cleared, 0, sizeof(bool) * COCO_NUM_SETTINGS);
	if (PG_ARGISNULL(ALTER_CLEAR_ARG))
		return;
	names = PG_GETARG_ARRAYTYPE_P(ALTER_CLEAR_ARG);
	if (ARR_NDIM(names) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clear must be a one-dimensional array of setting names")));

	initStringInfo(&nullable);
	for (int s = 0; s < COCO_NUM_SETTINGS; s++)
		if (coco_settings[s].nullable)
			appendStringInfo(&nullable, "%s%s", nullable.len > 0 ? ", " : "",
							 coco_settings[s].name);

	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		int			s;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("clear must not contain NULL")));
		name = TextDatumGetCString(elems[i]);
		for (s = 0; s < COCO_NUM_SETTINGS; s++)
			if (strcmp(name, coco_settings[s].name) == 0)
				break;
		if (s == COCO_NUM_SETTINGS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown setting \"%s\" in clear", name),
					 errdetail("clear may name %s.", nullable.data)));
		if (!coco_settings[s].nullable)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s cannot be cleared", name),
					 errdetail("clear may name only the settings that can be NULL: %s.",
							   nullable.data)));
		if (coco_setting_given(fcinfo, ALTER_FIRST_SETTING, s, COCO_NONE_BY_CLEAR))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is both given and cleared", name),
					 errhint("Give %s a value, or name it in clear for none, not both.", name)));
		cleared[s] = true;
	}
}

/*
 * alter_hook(hook_id, <settings>..., clear, batch_size, batch_wait):
 * changes the settings given (not NULL) and sets those named in clear to
 * NULL, in one UPDATE; the rest stay.  Every value is checked as
 * register_hook checks it.  The catalog's trigger keeps the settings
 * events already written name (keep_hook_settings); the collection's
 * triggers depend on the hooks' events only, which do not change.  A
 * secret given or cleared takes effect at once and ends a rotation's
 * overlap, as rotate_secret with overlap '0' does.  False if there is no
 * such hook.
 */
Datum
cocohooks_alter_hook(PG_FUNCTION_ARGS)
{
	int64		hook_id = hook_id_arg(fcinfo);
	bool		cleared[COCO_NUM_SETTINGS];
	CocoAsOwner st;
	Oid			relid;
	StringInfoData sql;
	Datum		args[COCO_NUM_SETTINGS + 1];
	Oid			types[COCO_NUM_SETTINGS + 1];
	char		nulls[COCO_NUM_SETTINGS + 1];
	int			nargs = 1;
	int			secret_arg = 0;
	CocoEventKind event = COCO_POST_SAVE;
	Node	   *filter = NULL;

	read_clear(fcinfo, cleared);
	coco_check_settings(fcinfo, ALTER_FIRST_SETTING, COCO_NONE_BY_CLEAR);

	/* the hook's row stays locked (FOR UPDATE) until the transaction ends */
	coco_begin_as_owner(&st);
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (OidIsValid(relid))
		event = hook_event(hook_id);
	coco_end_as_owner(&st);
	if (!OidIsValid(relid))
		PG_RETURN_BOOL(false);
	/*
	 * As the caller, with the caller's search_path (a filter names what the
	 * caller sees); the columns named must stay until we commit.
	 */
	if (!PG_ARGISNULL(ALTER_FIRST_SETTING + COCO_SETTING_COLUMNS) ||
		!PG_ARGISNULL(ALTER_FIRST_SETTING + COCO_SETTING_EXCLUDE_COLUMNS) ||
		!PG_ARGISNULL(ALTER_FIRST_SETTING + COCO_SETTING_FILTER))
	{
		LockRelationOid(relid, AccessShareLock);
		filter = coco_check_collection_settings(fcinfo, ALTER_FIRST_SETTING, relid, event,
												COCO_NONE_BY_CLEAR);
	}
	coco_begin_as_owner(&st);

	args[0] = Int64GetDatum(hook_id);
	types[0] = INT8OID;
	nulls[0] = ' ';
	initStringInfo(&sql);
	appendStringInfoString(&sql, "UPDATE cocohooks.hooks SET ");
	for (int s = 0; s < COCO_NUM_SETTINGS; s++)
	{
		bool		given = coco_setting_given(fcinfo, ALTER_FIRST_SETTING, s,
											   COCO_NONE_BY_CLEAR);

		if (!given && !cleared[s])
			continue;
		args[nargs] = given ?
			PG_GETARG_DATUM(coco_setting_argno(ALTER_FIRST_SETTING, s, COCO_NONE_BY_CLEAR)) :
			(Datum) 0;
		/* stored with every name outside pg_catalog qualified (filter_compile.c) */
		if (s == COCO_SETTING_FILTER && given)
			args[nargs] = CStringGetTextDatum(coco_filter_deparse(filter, relid));
		types[nargs] = coco_settings[s].type;
		nulls[nargs] = given ? ' ' : 'n';
		nargs++;
		appendStringInfo(&sql, "%s%s = $%d", nargs > 2 ? ", " : "",
						 quote_identifier(coco_settings[s].name), nargs);
		if (s == COCO_SETTING_SECRET)
			secret_arg = nargs;
	}
	if (nargs == 1)
	{
		coco_end_as_owner(&st);
		PG_RETURN_BOOL(true);	/* nothing to change */
	}
	if (secret_arg > 0)
		appendStringInfo(&sql,
						 ", previous_secret = CASE WHEN secret IS DISTINCT FROM $%d "
						 "THEN NULL ELSE previous_secret END"
						 ", previous_secret_until = CASE WHEN secret IS DISTINCT FROM $%d "
						 "THEN NULL ELSE previous_secret_until END",
						 secret_arg, secret_arg);
	appendStringInfoString(&sql, " WHERE id = $1");

	/* no row limit: a limited UPDATE would not fire its statement trigger */
	if (SPI_execute_with_args(sql.data, nargs, types, args, nulls, false, 0) != SPI_OK_UPDATE ||
		SPI_processed != 1)
		elog(ERROR, "could not update cocohooks.hooks");
	coco_end_as_owner(&st);
	PG_RETURN_BOOL(true);
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

/*
 * Run by the install script: refuse a server that cannot work, and
 * reserve this database a slot (an ERROR past cocohooks.max_databases).
 */
Datum
cocohooks_check_install(PG_FUNCTION_ARGS)
{
	coco_require_preload();
	coco_warn_if_wal_unavailable();
	coco_extension_changed();
	PG_RETURN_VOID();
}
