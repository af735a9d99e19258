/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background worker of one database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WORKER_H
#define COCOHOOKS_WORKER_H

#include "postgres.h"

#include "postmaster/bgworker.h"

extern bool coco_worker_start(Oid dboid, BackgroundWorkerHandle **handle);
extern PGDLLEXPORT void cocohooks_worker_main(Datum main_arg);

#endif							/* COCOHOOKS_WORKER_H */
