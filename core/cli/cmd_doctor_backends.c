/*
 * keyhole doctor: each configured backend's authentication round trip,
 * the same one keyhole backend test runs. It fetches no secret.
 */
#include <stdio.h>

#include "cli.h"
#include "cmd_doctor.h"

static void check_backend(struct kh_doctor *d, const char *name)
{
	char check[96], type[KH_CLI_BACKEND_TYPE_MAX];
	struct kh_err err = { { 0 } };
	json_t *report = NULL;
	int r;

	(void)snprintf(check, sizeof(check), "backend %s", name);
	r = kh_cli_backend_test(d->config_path, name, type, &report, &err);
	if (r == KH_EXIT_USAGE)
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, err.msg,
				  "correct backends.%s in %s (see keyhole "
				  "backend list)", name, d->config->path);
	else if (r != KH_EXIT_OK)
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, err.msg,
				  "run keyhole backend test %s for each step "
				  "it checked", name);
	else
		kh_doctor_pass(d, check, "type %s, steps checked: %zu", type,
			       json_array_size(report));
	json_decref(report);
}

void kh_doctor_check_backends(struct kh_doctor *d)
{
	const char *name;
	json_t *conf;

	if (d->no_backends) {
		kh_doctor_problem(d, KH_DOCTOR_WARN, "backends",
				  "skipped (--no-backends)",
				  "run keyhole doctor without --no-backends");
		return;
	}
	if (json_object_size(d->config->backends) == 0) {
		kh_doctor_problem(d, KH_DOCTOR_WARN, "backends",
				  "none configured, so no secret can be served",
				  "add one under \"backends\" in %s",
				  d->config->path);
		return;
	}
	json_object_foreach(d->config->backends, name, conf)
		check_backend(d, name);
}
