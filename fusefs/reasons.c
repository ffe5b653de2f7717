/*
 * The last denial reason of each (caller uid, path), which getxattr
 * returns as "user.keyhole.reason". A caller sees only its own uid's
 * entries, so one user cannot learn why another was denied.
 *
 * The table has a fixed size: when it is full, the least recently set
 * entry is replaced, so a caller probing many paths cannot grow memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

struct reason_entry {
	uid_t uid;
	uint64_t stamp;   /* 0 for a free slot; larger is newer */
	char path[KD_REASON_PATH_MAX];
	char reason[KD_REASON_MAX];
};

struct kd_reasons {
	pthread_mutex_t lock;
	uint64_t clock;
	struct reason_entry entries[KD_REASON_SLOTS];
};

int kd_reasons_new(struct kd_reasons **out)
{
	struct kd_reasons *reasons;

	*out = NULL;
	reasons = calloc(1, sizeof(*reasons));
	if (!reasons)
		return -ENOMEM;
	pthread_mutex_init(&reasons->lock, NULL);
	*out = reasons;
	return 0;
}

void kd_reasons_free(struct kd_reasons *reasons)
{
	if (!reasons)
		return;
	pthread_mutex_destroy(&reasons->lock);
	free(reasons);
}

/* Caller holds the lock. Returns the entry for (uid, path) or NULL. */
static struct reason_entry *find_entry(struct kd_reasons *reasons, uid_t uid,
				       const char *path)
{
	for (size_t i = 0; i < KD_REASON_SLOTS; i++) {
		struct reason_entry *e = &reasons->entries[i];

		if (e->stamp != 0 && e->uid == uid &&
		    strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

static struct reason_entry *oldest_entry(struct kd_reasons *reasons)
{
	struct reason_entry *oldest = &reasons->entries[0];

	for (size_t i = 1; i < KD_REASON_SLOTS; i++) {
		if (reasons->entries[i].stamp < oldest->stamp)
			oldest = &reasons->entries[i];
	}
	return oldest;
}

void kd_reasons_set(struct kd_reasons *reasons, uid_t uid, const char *path,
		    const char *reason)
{
	struct reason_entry *e;

	/* A longer path cannot name a secret (backend and name are short). */
	if (strlen(path) >= KD_REASON_PATH_MAX)
		return;

	pthread_mutex_lock(&reasons->lock);
	e = find_entry(reasons, uid, path);
	if (!e) {
		e = oldest_entry(reasons);
		e->uid = uid;
		(void)snprintf(e->path, sizeof(e->path), "%s", path);
	}
	(void)snprintf(e->reason, sizeof(e->reason), "%s", reason);
	e->stamp = ++reasons->clock;
	pthread_mutex_unlock(&reasons->lock);
}

/* Copies the reason into out; -ENODATA when (uid, path) has none. */
int kd_reasons_get(struct kd_reasons *reasons, uid_t uid, const char *path,
		   char out[KD_REASON_MAX])
{
	struct reason_entry *e;
	int r = -ENODATA;

	out[0] = '\0';
	pthread_mutex_lock(&reasons->lock);
	e = find_entry(reasons, uid, path);
	if (e) {
		(void)snprintf(out, KD_REASON_MAX, "%s", e->reason);
		r = 0;
	}
	pthread_mutex_unlock(&reasons->lock);
	return r;
}
