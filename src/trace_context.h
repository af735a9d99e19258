/*-------------------------------------------------------------------------
 *
 * trace_context.h
 *	  W3C Trace Context: the bounds of what an event carries, and the
 *	  checks of the two settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_TRACE_CONTEXT_H
#define COCOHOOKS_TRACE_CONTEXT_H

#include "postgres.h"

#include "utils/guc.h"

#define COCO_TRACEPARENT_LEN		55
#define COCO_TRACESTATE_MAX_LEN		512
#define COCO_TRACESTATE_MAX_MEMBERS	32

extern bool coco_check_traceparent(char **newval, void **extra, GucSource source);
extern bool coco_check_tracestate(char **newval, void **extra, GucSource source);

#endif							/* COCOHOOKS_TRACE_CONTEXT_H */
