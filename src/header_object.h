/*-------------------------------------------------------------------------
 *
 * header_object.h
 *	  Walking a hook's headers object.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HEADER_OBJECT_H
#define COCOHOOKS_HEADER_OBJECT_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

typedef void (*CocoHeaderFn) (const char *name, int name_len,
							  JsonbValue *value, void *arg);
extern bool coco_headers_walk(Jsonb *headers, CocoHeaderFn fn, void *arg);
extern void coco_headers_to_lines(Jsonb *headers, StringInfo out);

#endif							/* COCOHOOKS_HEADER_OBJECT_H */
