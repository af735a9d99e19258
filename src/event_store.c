/*-------------------------------------------------------------------------
 *
 * event_store.c
 *	  Keeps undelivered events in a file across a worker or server restart.
 *
 * When the worker exits (shutdown, pg_terminate_backend, an error), it
 * saves every event it has not finished delivering — those still in the
 * shared queue and those it holds, in flight or waiting to retry — to
 * $PGDATA/cocohooks.events.<database oid>, and the next worker of that
 * database sends them first.  Events that are in the WAL (durability =
 * wal) are not saved: the next worker reads them from there again.  (0.1
 * had one file, cocohooks.events, for the database named by
 * cocohooks.database: that database's worker takes it over.)  Each saved
 * message carries its event id, attempts made and original queue time, so
 * receivers see the same webhook-id.
 *
 * The file is written to a temporary name, fsynced and renamed, so it is
 * either whole or absent.  It holds a header (magic, version, byte count)
 * and the messages in their queue format.  A process killed outright
 * (SIGKILL, a crash restart, an immediate shutdown) writes nothing: what it
 * held is lost.
 *
 * Runs in: the worker (its database's file: save, load, remove); backends
 * and the launcher (a dropped database's file goes; setting up a
 * database's dbslot looks whether it has one).
 *
 * Invariants:
 *	- saving and removing never raise an error, only log one (a failed
 *	  save returns false): the worker saves from its exit callback;
 *	- a file is loaded only if every message in it is whole; a damaged one
 *	  is renamed to <file>.damaged, and none of its events is sent;
 *	- the names are relative to the data directory, the working directory
 *	  of every server process.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "cocohooks.h"
#include "event_store.h"
#include "settings.h"

#define LEGACY_FILE		"cocohooks.events"
#define STORE_FILE		store_path(MyDatabaseId, "")
#define STORE_TMP_FILE	store_path(MyDatabaseId, ".tmp")
#define STORE_MAGIC		0x636f636f	/* "coco" */
#define STORE_VERSION	1

typedef struct StoreHeader
{
	uint32		magic;
	uint32		version;
	uint64		nbytes;
	uint64		nmessages;
} StoreHeader;

/* The store of database dboid, with suffix; in a static buffer. */
static const char *
store_path(Oid dboid, const char *suffix)
{
	static char path[MAXPGPATH];

	snprintf(path, sizeof(path), "%s.%u%s", LEGACY_FILE, dboid, suffix);
	return path;
}

/*
 * Writes the messages (len bytes, n of them) to the store, replacing what
 * was there.  Returns false, after logging why, if it could not.
 */
bool
coco_store_save(const char *messages, Size len, uint64 n)
{
	StoreHeader hdr = {STORE_MAGIC, STORE_VERSION, len, n};
	FILE	   *f;
	bool		ok;

	f = AllocateFile(STORE_TMP_FILE, PG_BINARY_W);
	if (f == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", STORE_TMP_FILE)));
		return false;
	}
	ok = fwrite(&hdr, sizeof(hdr), 1, f) == 1 &&
		(len == 0 || fwrite(messages, len, 1, f) == 1) &&
		fflush(f) == 0 &&
		pg_fsync(fileno(f)) == 0;
	if (!ok)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", STORE_TMP_FILE)));
	if (FreeFile(f) != 0 && ok)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", STORE_TMP_FILE)));
		ok = false;
	}
	if (!ok)
	{
		unlink(STORE_TMP_FILE);
		return false;
	}
	{
		char		tmp[MAXPGPATH];

		strlcpy(tmp, STORE_TMP_FILE, sizeof(tmp));
		return durable_rename(tmp, STORE_FILE, LOG) == 0;
	}
}

/*
 * Reads the store into buf (allocated in the current memory context).
 * Returns the number of messages, 0 if there is no store.  A damaged store
 * is reported and set aside as cocohooks.events.damaged.
 */
uint64
coco_store_load(StringInfo buf)
{
	StoreHeader hdr;
	FILE	   *f;
	Size		off = 0;
	bool		ok;
	char		path[MAXPGPATH];

	strlcpy(path, STORE_FILE, sizeof(path));
	f = AllocateFile(path, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", STORE_FILE)));
		return 0;
	}
	ok = fread(&hdr, sizeof(hdr), 1, f) == 1 &&
		hdr.magic == STORE_MAGIC && hdr.version == STORE_VERSION &&
		hdr.nbytes < MaxAllocSize;
	if (ok)
	{
		enlargeStringInfo(buf, (int) hdr.nbytes);
		ok = hdr.nbytes == 0 || fread(buf->data + buf->len, hdr.nbytes, 1, f) == 1;
	}
	FreeFile(f);

	/* every message must be whole */
	while (ok && off < hdr.nbytes)
	{
		const CocoEventHeader *msg = (const CocoEventHeader *) (buf->data + buf->len + off);

		if (hdr.nbytes - off < sizeof(CocoEventHeader) ||
			msg->total_len < sizeof(CocoEventHeader) ||
			msg->total_len % 8 != 0 || msg->total_len > hdr.nbytes - off)
			ok = false;
		else
			off += msg->total_len;
	}
	if (!ok)
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" is damaged; its events are not delivered", STORE_FILE),
				 errdetail("It was renamed to \"%s.damaged\".", STORE_FILE)));
		{
			char		damaged[MAXPGPATH];

			snprintf(damaged, sizeof(damaged), "%s.damaged", path);
			(void) durable_rename(path, damaged, LOG);
		}
		return 0;
	}
	buf->len += (int) hdr.nbytes;
	buf->data[buf->len] = '\0';
	return hdr.nmessages;
}

/*
 * 0.1's store belongs to the database that cocohooks.database named: its
 * worker, of database dbname, takes it over.
 */
void
coco_store_adopt_legacy(const char *dbname)
{
	struct stat st;
	char		path[MAXPGPATH];

	strlcpy(path, STORE_FILE, sizeof(path));
	if (cocohooks_database != NULL && strcmp(dbname, cocohooks_database) == 0 &&
		stat(LEGACY_FILE, &st) == 0 && stat(path, &st) != 0)
		(void) durable_rename(LEGACY_FILE, path, LOG);
}

/* Whether database dboid has saved events waiting for its next worker. */
bool
coco_store_exists(Oid dboid)
{
	struct stat st;

	return stat(store_path(dboid, ""), &st) == 0;
}

/* Removes database dboid's store: the database was dropped. */
void
coco_store_remove_for(Oid dboid)
{
	const char *path = store_path(dboid, "");

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}

/* Removes the store once its events are back in the queue. */
void
coco_store_remove(void)
{
	if (unlink(STORE_FILE) != 0 && errno != ENOENT)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", STORE_FILE)));
}
