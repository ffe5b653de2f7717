/* RFC 7638 thumbprints over the canonical JSON of a JWK's required members. */
#include <stdlib.h>

#include <sodium.h>

#include "jwk_thumbprint.h"
#include "keyhole/canon.h"

int kh_jwk_thumbprint(const json_t *members, char kid[KH_KID_LEN + 1],
		      struct kh_err *err)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	char *text = NULL;
	size_t text_len = 0;
	int rc;

	/* Members are sorted and unescaped base64url, so the canonical
	 * form is exactly the text RFC 7638 section 3 hashes. */
	rc = kh_canon_dump(members, &text, &text_len, err);
	if (rc == 0) {
		crypto_hash_sha256(digest, (const unsigned char *)text,
				   text_len);
		sodium_bin2base64(kid, KH_KID_LEN + 1, digest, sizeof(digest),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	free(text);
	return rc;
}
