/*
 * Private interface between the backend loader (backend.c), the host
 * services lent to modules (backend_host.c) and the "#field" selection
 * (backend_field.c). Not installed and not part of the libkeyhole API.
 */
#ifndef KEYHOLE_BACKEND_INTERNAL_H
#define KEYHOLE_BACKEND_INTERNAL_H

#include "keyhole/backend.h"
#include "keyhole/backend_module.h"

/*
 * Creates the host services table for the backend instance name. The
 * strings in env are copied; env->fed_key is borrowed and must outlive
 * the table.
 */
int kh_backend_host_new(const char *name, const struct kh_backend_env *env,
			struct kh_backend_host **out);
void kh_backend_host_free(struct kh_backend_host *host);

/*
 * Replaces *secret by the value of member field of the JSON object it
 * contains, wiping the original. err starts with the "bad response"
 * wording because the backend returned something unusable.
 */
int kh_backend_select_field(struct kh_secret **secret, const char *name,
			    const char *field, struct kh_err *err);

/*
 * Zeroes every string in value before jansson frees it; the host lends
 * it to modules as json_wipe. Member names and numbers stay in freed
 * heap memory (docs/known-issues.md).
 */
void kh_backend_json_wipe(json_t *value);

#endif
