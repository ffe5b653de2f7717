/*
 * Client side of keyholed's socket protocol: one JSON request line out
 * and one JSON reply line back over a unix stream socket, with every
 * step bounded in time and size. The keyhole CLI and pam_keyhole.so use
 * it.
 */
#ifndef KEYHOLE_BROKER_H
#define KEYHOLE_BROKER_H

#include <jansson.h>
#include <stddef.h>

#include "keyhole/error.h"

/*
 * Flag for struct kh_broker_opts: reject a broker whose process does
 * not run as root (SO_PEERCRED), before the request goes out.
 */
#define KH_BROKER_REQUIRE_ROOT_PEER 0x1u

/* Limits and checks of one kh_broker_call. */
struct kh_broker_opts {
	int timeout_ms;     /* bounds connect, each send, and the whole reply */
	size_t max_reply;   /* longest reply line accepted, in bytes */
	unsigned int flags; /* KH_BROKER_REQUIRE_ROOT_PEER or 0 */
};

/*
 * Connects to the broker at socket_path, sends request as one compact
 * JSON line and reads one reply line, which must be a single JSON
 * object with a boolean "ok" and nothing after its newline. The reply
 * is parsed strictly (kh_json_parse) and returned in *reply (a new
 * reference) whatever the value of "ok", so the caller decides what a
 * rejection means.
 *
 * A broker that turns a client away ("busy") may write its reply and
 * close without reading the request, so a send that fails with EPIPE or
 * ECONNRESET is reported only when no reply line came.
 *
 * Returns 0, or -ENAMETOOLONG, -errno of connect (-ENOENT,
 * -ECONNREFUSED, -EACCES), -ETIMEDOUT, -EPERM for a non-root broker
 * under KH_BROKER_REQUIRE_ROOT_PEER, -EPROTO for a reply that is too
 * long, cut short or not valid, or another -errno. err names the step
 * that failed, and socket_path for the connect steps.
 */
int kh_broker_call(const char *socket_path, const json_t *request,
		   const struct kh_broker_opts *opts, json_t **reply,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
