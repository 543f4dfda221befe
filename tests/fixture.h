/* fixture.h — data fixtures the unit tests share. */
#ifndef COTRAIN_TESTS_FIXTURE_H
#define COTRAIN_TESTS_FIXTURE_H

#include <stddef.h>

#include "cotrain/hash.h"

/* Writes DIR/manifest.json (making DIR) naming n shards `<prefix>-<i>` of 1000 tokens of
 * `tokenizer` (vocabulary `vocab`), each with a made-up sha256 and no file: for code that reads
 * manifests but no shard. Its path goes to path[0..cap), the file's sha256 to sha (may be NULL).
 * Fails the test (CHECK) when it cannot. */
void fixture_manifest(const char *dir, const char *prefix, int n, const char *tokenizer, int vocab,
                      char *path, size_t cap, char sha[CT_SHA256_HEX]);

#endif
