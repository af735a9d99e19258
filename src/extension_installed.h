/*-------------------------------------------------------------------------
 *
 * extension_installed.h
 *	  Whether the extension is installed in this database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EXTENSION_INSTALLED_H
#define COCOHOOKS_EXTENSION_INSTALLED_H

#include "postgres.h"

extern bool coco_extension_installed(void);

#endif							/* COCOHOOKS_EXTENSION_INSTALLED_H */
