/*-------------------------------------------------------------------------
 *
 * hook_settings.h
 *	  The worker's copy of the hooks' settings, read from cocohooks.hooks
 *	  and cocohooks.hook_versions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_SETTINGS_H
#define COCOHOOKS_HOOK_SETTINGS_H

#include "postgres.h"

#include "cocohooks.h"

/*
 * Where and how one delivery goes: a hook's settings as its event names
 * them.  Shared by the deliveries that use it; never changed.
 */
typedef struct CocoHookTarget
{
	int64		hook_id;
	uint32		settings_version;	/* 0: a 0.1/0.2 message's own spec */
	bool		missing;		/* the catalog has no such settings */
	int32		timeout_ms;
	int32		max_retries;	/* COCO_RETRIES_UNLIMITED: no limit */
	uint32		flags;			/* COCO_SPEC_ORDERED */
	int32		batch_size;		/* events per request: 1 sends each alone */
	int32		batch_wait_ms;	/* a batch's gathering after its first event */
	const char *url;
	int			url_len;
	const char *headers;		/* "Name: value\0" lines */
	int			headers_len;
	const char *key;			/* a 0.1/0.2 message's own signing key */
	int			key_len;
} CocoHookTarget;

/* a settings version of a hook */
typedef struct CocoSettingsKey
{
	int64		hook_id;
	uint32		settings_version;
	uint32		pad;			/* zero: keys are hashed as bytes */
} CocoSettingsKey;

extern void coco_hook_settings_refresh(void);
extern int64 coco_hook_retry_for_ms(int64 hook_id);
extern bool coco_hook_pace_limits(int64 hook_id, double *max_per_second,
								  int *max_concurrent);

extern const CocoHookTarget *coco_hook_target_get(const CocoHookSpec *spec);
extern void coco_hook_target_release(const CocoHookTarget *target);

/* the versions in cocohooks.hook_versions as of the last read */
extern int	coco_hook_settings_retired(const CocoSettingsKey **keys);

#endif							/* COCOHOOKS_HOOK_SETTINGS_H */
