/*-------------------------------------------------------------------------
 *
 * event_ring.c
 *	  Each database's ring of event messages in shared memory: the way
 *	  events cross from the backends that cause them to their database's
 *	  worker.
 *
 * The rings share one pool of cocohooks.queue_size bytes, cut into chunks
 * (db_slots.c sets it up).  A ring counts logical bytes: head and tail
 * count bytes written and read since the dbslot was set up, (head - tail) is
 * the space in use, and logical chunk k of it lives in the pool chunk its
 * chunk table names at k modulo the table's size.  A push takes chunks
 * from the pool as it needs them, a pop gives back those it has read past.
 * One database may use the whole pool, except that it never takes the
 * chunks other databases with a dbslot need to reach their reserve (an equal
 * share of the pool per cocohooks.max_databases): a busy database cannot
 * starve another of queue space.
 *
 * Runs in: backends (push, at commit or at once) and the worker (pop).
 *
 * Invariants:
 *	- messages are whole multiples of 8 bytes and may span chunks;
 *	- any number of backends push under the dbslot's exclusive lock; the
 *	  worker pops batches under the same lock and copies them out, so no
 *	  pointer into the pool is held once the lock is released;
 *	- every message gets the next sequence number as it enters the ring;
 *	- a full ring never blocks a writer: push stops at the first message
 *	  that does not fit, and the caller counts what was left as dropped
 *	  (coco_ring_count_dropped).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "cocohooks.h"
#include "dbslot_internal.h"
#include "event_ring.h"

/*
 * A process's first write to a page of shared memory takes a page fault,
 * and a big commit writes thousands of pool pages.  Mapping a chunk at a
 * time with one madvise(MADV_POPULATE_WRITE) costs far less than a fault
 * per page.  mapped_chunks remembers, for this process, which chunks are
 * mapped; a kernel without MADV_POPULATE_WRITE simply faults as before.
 */
static uint64 *mapped_chunks = NULL;

static void
map_chunk(uint32 chunk)
{
#ifdef MADV_POPULATE_WRITE
	uintptr_t	page = (uintptr_t) sysconf(_SC_PAGESIZE);
	uintptr_t	start;
	uintptr_t	end;

	if (mapped_chunks == NULL)
		mapped_chunks = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(uint64) * ((coco_dbslots->pool_chunks + 63) / 64));
	if (mapped_chunks[chunk / 64] & ((uint64) 1 << (chunk % 64)))
		return;
	mapped_chunks[chunk / 64] |= (uint64) 1 << (chunk % 64);

	/* whole pages: the pool lies inside one page-aligned mapping */
	start = (uintptr_t) coco_dbslots->pool + (uintptr_t) chunk * coco_dbslots->chunk_size;
	end = start + coco_dbslots->chunk_size;
	start &= ~(page - 1);
	end = (end + page - 1) & ~(page - 1);
	(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
}

/* The pool address of logical byte pos of ring q. */
static inline char *
chunk_addr(CocoDbSlot *q, uint64 pos)
{
	uint32		chunk = q->chunk_ids[(pos / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks];

	return coco_dbslots->pool + (Size) chunk * coco_dbslots->chunk_size + pos % coco_dbslots->chunk_size;
}

/*
 * Maps the chunks ring q already has for [pos, pos + len), ahead of a
 * write; read without the lock, so only a guess.
 */
static void
map_range(CocoDbSlot *q, uint64 pos, Size len)
{
	uint64		end = Min(pos + len, *(volatile uint64 *) &q->alloc_end);

	for (uint64 p = pos - pos % coco_dbslots->chunk_size; p < end; p += coco_dbslots->chunk_size)
		map_chunk(q->chunk_ids[(p / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks]);
}

/*
 * Chunks q may still take from the pool: the free ones, less those the
 * other dbslots in use lack to reach their reserve.  pool_mutex held.
 */
static uint32
chunks_available(CocoDbSlot *q)
{
	uint32		reserve = Max(coco_dbslots->pool_chunks / coco_dbslots->nslots, 1);
	uint32		owed = 0;

	for (int i = 0; i < coco_dbslots->nslots; i++)
	{
		CocoDbSlot *o = &coco_dbslots->slots[i];

		if (o != q && OidIsValid(o->dboid) && o->nheld < reserve)
			owed += reserve - o->nheld;
	}
	return coco_dbslots->nfree > owed ? coco_dbslots->nfree - owed : 0;
}

/*
 * Makes q's chunks cover logical bytes up to end, taking chunks from the
 * pool; false if it may not have that many.  q's lock held.
 */
static bool
cover_until(CocoDbSlot *q, uint64 end)
{
	uint32		need;
	bool		ok;

	if (end <= q->alloc_end)
		return true;
	need = (uint32) ((end - q->alloc_end + coco_dbslots->chunk_size - 1) / coco_dbslots->chunk_size);
	if (q->nheld + need > coco_dbslots->pool_chunks)
		return false;
	SpinLockAcquire(&coco_dbslots->pool_mutex);
	ok = chunks_available(q) >= need;
	if (ok)
	{
		for (uint32 i = 0; i < need; i++)
		{
			q->chunk_ids[(q->alloc_end / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks] =
				coco_dbslots->free_chunks[--coco_dbslots->nfree];
			q->alloc_end += coco_dbslots->chunk_size;
		}
		q->nheld += need;
	}
	SpinLockRelease(&coco_dbslots->pool_mutex);
	return ok;
}

/* Gives back the chunks q's tail has passed.  q's lock held. */
static void
release_read_chunks(CocoDbSlot *q)
{
	if (q->free_from + coco_dbslots->chunk_size > q->tail)
		return;
	SpinLockAcquire(&coco_dbslots->pool_mutex);
	while (q->free_from + coco_dbslots->chunk_size <= q->tail)
	{
		coco_dbslots->free_chunks[coco_dbslots->nfree++] =
			q->chunk_ids[(q->free_from / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks];
		q->free_from += coco_dbslots->chunk_size;
		q->nheld--;
	}
	SpinLockRelease(&coco_dbslots->pool_mutex);
}

static void
ring_write(CocoDbSlot *q, uint64 pos, const char *src, Size len)
{
	while (len > 0)
	{
		Size		n = Min(len, coco_dbslots->chunk_size - pos % coco_dbslots->chunk_size);

		map_chunk(q->chunk_ids[(pos / coco_dbslots->chunk_size) % coco_dbslots->pool_chunks]);
		memcpy(chunk_addr(q, pos), src, n);
		pos += n;
		src += n;
		len -= n;
	}
}

static void
ring_read(CocoDbSlot *q, uint64 pos, char *dst, Size len)
{
	while (len > 0)
	{
		Size		n = Min(len, coco_dbslots->chunk_size - pos % coco_dbslots->chunk_size);

		memcpy(dst, chunk_addr(q, pos), n);
		pos += n;
		dst += n;
		len -= n;
	}
}

/*
 * Pushes the consecutive messages in len bytes.  Returns how many
 * entered the ring; they are the first ones, since order is kept.  The
 * caller counts the rest as dropped.  Never blocks beyond the lock and never
 * raises an error, so it is safe in a commit callback.
 */
int
coco_ring_push(const char *messages, Size len)
{
	CocoDbSlot *slot = coco_dbslot_mine(true);
	TimestampTz now;
	Size		done = 0;
	int			pushed = 0;

	if (slot == NULL)
		return 0;
	now = GetCurrentTimestamp();

	/*
	 * Fault in the pages this push will likely write before taking the lock;
	 * head, read without the lock, is only a guess of where they are.
	 */
	map_range(slot, *(volatile uint64 *) &slot->head, len);

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	/* the dbslot was freed (DROP EXTENSION, DROP DATABASE) meanwhile */
	if (slot->dboid != MyDatabaseId)
		len = 0;
	while (done < len)
	{
		CocoEventHeader hdr;

		memcpy(&hdr, messages + done, sizeof(hdr));
		if (!cover_until(slot, slot->head + hdr.total_len))
			break;
		hdr.seq = ++slot->last_seq;
		if (hdr.queued_at == 0)
			hdr.queued_at = now;
		ring_write(slot, slot->head, (const char *) &hdr, sizeof(hdr));
		ring_write(slot, slot->head + sizeof(hdr), messages + done + sizeof(hdr),
				   hdr.total_len - sizeof(hdr));
		slot->head += hdr.total_len;
		done += hdr.total_len;
		pushed++;
	}
	LWLockRelease(slot->lock);

	if (pushed > 0)
	{
		pg_atomic_fetch_add_u64(&slot->queued, pushed);
		coco_dbslot_wake_worker();
	}
	return pushed;
}

/*
 * Events that did not enter the ring (it was full, or the database has no
 * dbslot): counted where cocohooks.stats shows them.
 */
void
coco_ring_count_dropped(uint64 n)
{
	CocoDbSlot *slot;

	if (n == 0 || coco_dbslots == NULL)
		return;
	slot = coco_dbslot_mine(false);
	if (slot != NULL)
		pg_atomic_fetch_add_u64(&slot->dropped, n);
	else
		pg_atomic_fetch_add_u64(&coco_dbslots->no_slot_dropped, n);
}

/*
 * Pop whole messages into dst, up to dst_size bytes and max_messages.  Returns the bytes
 * copied; when the first message alone does not fit, returns 0 and sets
 * *needed to its size.
 */
Size
coco_ring_pop(char *dst, Size dst_size, int max_messages, int *nmessages,
			  Size *needed)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);
	Size		copied = 0;
	int			n = 0;

	*needed = 0;
	*nmessages = 0;
	if (slot == NULL)
		return 0;

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	while (slot->tail < slot->head && n < max_messages)
	{
		CocoEventHeader hdr;

		ring_read(slot, slot->tail, (char *) &hdr, sizeof(hdr));
		if (copied + hdr.total_len > dst_size)
		{
			if (copied == 0)
				*needed = hdr.total_len;
			break;
		}
		ring_read(slot, slot->tail, dst + copied, hdr.total_len);
		slot->tail += hdr.total_len;
		slot->popped_seq = hdr.seq;
		copied += hdr.total_len;
		n++;
	}
	release_read_chunks(slot);
	LWLockRelease(slot->lock);

	*nmessages = n;
	return copied;
}

/* True when no message waits in this database's ring. */
bool
coco_ring_is_empty(void)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);
	bool		empty;

	if (slot == NULL)
		return true;
	LWLockAcquire(slot->lock, LW_SHARED);
	empty = (slot->head == slot->tail);
	LWLockRelease(slot->lock);
	return empty;
}

/*
 * The ring's logical positions: bytes pushed (*head) and popped (*tail)
 * since its dbslot was set up.  Whatever was pushed before a moment has
 * been popped once tail reaches the head of that moment.
 */
void
coco_ring_positions(uint64 *head, uint64 *tail)
{
	CocoDbSlot *slot = coco_dbslot_mine(false);

	*head = *tail = 0;
	if (slot == NULL)
		return;
	LWLockAcquire(slot->lock, LW_SHARED);
	*head = slot->head;
	*tail = slot->tail;
	LWLockRelease(slot->lock);
}
