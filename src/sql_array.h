/*-------------------------------------------------------------------------
 *
 * sql_array.h
 *	  One-dimensional SQL arrays from C values, for statements the worker
 *	  runs through SPI with a batch of rows at once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_SQL_ARRAY_H
#define COCOHOOKS_SQL_ARRAY_H

#include "postgres.h"

extern Datum coco_sql_array(Datum *values, bool *nulls, int n, Oid elemtype);

#endif							/* COCOHOOKS_SQL_ARRAY_H */
