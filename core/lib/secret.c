/* Secret buffers in sodium_malloc memory: guard pages, mlock, wiped on free. */
#include <errno.h>
#include <stdlib.h>

#include <sodium.h>

#include "keyhole/backend.h"

int kh_secret_new(size_t len, struct kh_secret **out)
{
	struct kh_secret *secret = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (len > KH_SECRET_MAX)
		return -EFBIG;
	if (sodium_init() < 0)
		return -EIO;

	secret = calloc(1, sizeof(*secret));
	if (!secret)
		return -ENOMEM;

	/* An empty secret still gets a valid, wipeable data pointer. */
	secret->data = sodium_malloc(len ? len : 1);
	if (!secret->data) {
		r = -ENOMEM;
		goto out;
	}
	secret->len = len;
	*out = secret;
	secret = NULL;
	r = 0;
out:
	free(secret);
	return r;
}

void kh_secret_free(struct kh_secret *secret)
{
	if (!secret)
		return;
	/* sodium_free zeroes the whole allocation before unmapping it. */
	sodium_free(secret->data);
	free(secret);
}
