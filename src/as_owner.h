/*-------------------------------------------------------------------------
 *
 * as_owner.h
 *	  Changes to the hook catalog made as its owner.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_AS_OWNER_H
#define COCOHOOKS_AS_OWNER_H

#include "postgres.h"

typedef struct CocoAsOwner
{
	Oid			save_userid;	/* the caller */
	int			save_sec_context;
	int			save_nestlevel;
} CocoAsOwner;

/* Oid of cocohooks.hooks; an ERROR if the extension is not installed here */
extern Oid	coco_hooks_catalog(void);

/* becomes the catalog's owner and connects SPI; and back */
extern void coco_begin_as_owner(CocoAsOwner *st);
extern void coco_end_as_owner(CocoAsOwner *st);

#endif							/* COCOHOOKS_AS_OWNER_H */
