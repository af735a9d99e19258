/*-------------------------------------------------------------------------
 *
 * settings_retirement.h
 *	  Forgetting a hook's old settings once no event can name them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_SETTINGS_RETIREMENT_H
#define COCOHOOKS_SETTINGS_RETIREMENT_H

#include "postgres.h"

extern void coco_settings_retirement_step(bool popped_waiting);
extern long coco_settings_retirement_timeout_ms(void);

#endif							/* COCOHOOKS_SETTINGS_RETIREMENT_H */
