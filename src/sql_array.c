/*-------------------------------------------------------------------------
 *
 * sql_array.c
 *	  One-dimensional SQL arrays from C values, for statements the worker
 *	  runs through SPI with a batch of rows at once (delivery_log.c,
 *	  parked_retries.c): one statement per batch, the rows as arrays
 *	  unnested by the statement.
 *
 * Runs in: the worker, inside its own transactions.
 *
 * Invariants: keeps no state; the array is palloc'd in the current memory
 * context; the element type's length, by-value and alignment come from
 * the catalog cache, never written out by hand.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/array.h"
#include "utils/lsyscache.h"

#include "sql_array.h"

/* An array of n values of elemtype; nulls may be NULL (no element is). */
Datum
coco_sql_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}
