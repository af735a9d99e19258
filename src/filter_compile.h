/*-------------------------------------------------------------------------
 *
 * filter_compile.h
 *	  A hook's row filter: checked and compiled at registration, written
 *	  back as text for dumps.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_FILTER_COMPILE_H
#define COCOHOOKS_FILTER_COMPILE_H

#include "postgres.h"

#include "nodes/nodes.h"

#include "cocohooks.h"

extern Node *coco_filter_compile(Oid relid, CocoEventKind event, const char *source);
extern char *coco_filter_deparse(Node *tree, Oid relid);
extern char *coco_filter_source(const char *tree, Oid relid);

#endif							/* COCOHOOKS_FILTER_COMPILE_H */
