/*-------------------------------------------------------------------------
 *
 * signing_keys.h
 *	  The secrets each hook's requests are signed with, as of now.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_SIGNING_KEYS_H
#define COCOHOOKS_SIGNING_KEYS_H

#include "utils/timestamp.h"

#include "cocohooks.h"

typedef struct CocoSigningKeys
{
	int64		hook_id;		/* hash key */
	int			key_len;		/* 0: the hook has no secret */
	int			previous_len;	/* 0: no rotation under way */
	TimestampTz previous_until; /* the previous key signs until then */
	char		key[COCO_MAX_KEY_LEN];
	char		previous[COCO_MAX_KEY_LEN];
} CocoSigningKeys;

extern void coco_signing_keys_note_change(void);
extern void coco_signing_keys_begin(void);
extern void coco_signing_keys_load(int64 id, const char *secret,
								   const char *previous,
								   TimestampTz previous_until);
extern void coco_signing_keys_end(bool succeeded);
extern const CocoSigningKeys *coco_signing_keys_for(int64 hook_id);

#endif							/* COCOHOOKS_SIGNING_KEYS_H */
