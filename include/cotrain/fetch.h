/* fetch.h — the run's data and checkpoints from the coordinator, for a group that cannot read the
 * coordinator's disk (`cotrain-worker --coordinator EP` without --data: a volunteer, another
 * site; or a group whose RUN_DIR lacks the head checkpoint it must resume from).
 *
 * Rank 0 asks for the manifest (data_manifest: checked against the sha256 the coordinator sends),
 * then for every shard it lacks, in chunks of CT_PROTO_CHUNK_MAX bytes (shard_fetch), into DIR. A
 * shard grows in <file>.part, which a later start resumes from its length; once whole it is
 * checked against the manifest's sha256 and renamed into place, so a shard file that exists is
 * complete and verified (the loader checks it again when it reads it). Progress, rate and ETA go
 * to the log. DIR must be on storage every rank of the group reads (as the checkpoints are). */
#ifndef COTRAIN_FETCH_H
#define COTRAIN_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "cotrain/attach.h"
#include "cotrain/comm.h"
#include "cotrain/err.h"
#include "cotrain/log.h"

/* Fetches what DIR lacks of the run's data (collective: every rank calls it, rank 0 fetches) and
 * writes the manifest's path into manifest[n]. Errors: CT_ECORRUPT (bytes that do not match
 * their sha256: naming the shard), CT_EIO (DIR: the file and why), those of the requests; every
 * rank returns the same code. */
int ct_fetch_data(ct_attach_t *a, ct_comm_t *comm, const char *dir, char *manifest, size_t n,
                  const ct_log_t *lg, ct_err_t *e);

/* Fetches checkpoint `id` of `step` (the run's head) into ROOT/ckpt-<step> (collective: rank 0
 * fetches). It grows in ROOT/.fetch-ckpt-<step>-<id>/, each file in <file>.part resumed from its
 * length by a later start, each checked against its sha256 (MANIFEST's is the id, the others'
 * are MANIFEST's) before the folder is renamed into place; a ROOT/ckpt-<step> already there (not
 * the run's, or the caller would not fetch) is moved aside, not deleted. ROOT must be on storage
 * every rank of the group reads, as DIR above. Errors: as ct_fetch_data's; every rank returns
 * the same code. */
int ct_fetch_checkpoint(ct_attach_t *a, ct_comm_t *comm, const char *root, const char *id,
                        int64_t step, const ct_log_t *lg, ct_err_t *e);

#endif
