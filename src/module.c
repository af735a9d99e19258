/*-------------------------------------------------------------------------
 *
 * module.c
 *	  The library's entry point: wires the modules of cocohooks together.
 *
 * Everything that must exist before the first backend forks is set up
 * here: the settings, the shared-memory request and set-up, the hooks into
 * PostgreSQL and the launcher.  Loaded without shared_preload_libraries,
 * only the settings are defined (settings.c).
 *
 * Runs in: the postmaster (preloading), and any backend that loads the
 * library later.
 *
 * Invariants: each module owns its state and its hooks into PostgreSQL;
 * this file only calls their init functions, and chains the shared-memory
 * hooks it installs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "db_slots.h"
#include "extension_watch.h"
#include "hook_cache.h"
#include "hook_stats.h"
#include "launcher.h"
#include "network_guard.h"
#include "pending_events.h"
#include "settings.h"
#include "upsert_tracker.h"
#include "utility_hook.h"
#include "wal_slot.h"
#include "wal_standby.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
coco_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	coco_dbslot_shmem_request();
	coco_hook_stats_shmem_request();
}

static void
coco_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	coco_dbslot_shmem_startup();
	coco_hook_stats_shmem_startup();
}

void
_PG_init(void)
{
	coco_settings_define();
	coco_network_guard_define_setting();
	MarkGUCPrefixReserved("cocohooks");

	if (!process_shared_preload_libraries_in_progress)
		return;

	coco_preloaded = true;
	if (!IsUnderPostmaster)
		coco_wal_slot_remove_unusable();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = coco_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = coco_shmem_startup;

	coco_hook_cache_init();
	coco_pending_init();
	coco_upsert_tracker_init();
	coco_extension_watch_init();
	coco_utility_hook_init();
	coco_launcher_register();
	coco_wal_standby_register();
}
