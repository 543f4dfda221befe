/* keygen.c — `cotrain keygen PREFIX`: a CURVE key pair for the coordinator protocol. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "cotrain/curve.h"

int ct_cmd_keygen(int argc, char **argv, const ct_log_t *lg) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: cotrain keygen PREFIX\n"
               "\n"
               "Writes a new CURVE key pair: PREFIX, the secret key (mode 0600; keep it), and\n"
               "PREFIX.pub, the public key (give it out: a coordinator's to its workers, a\n"
               "worker's to the coordinator's --allow file). Prints the public key and its key\n"
               "id, the name logs and the public record use. Never overwrites a file.\n");
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: cotrain keygen PREFIX (see --help)\n");
        return 2;
    }
    ct_keypair_t k;
    ct_err_t e = {0};
    int rc = ct_curve_keygen(argv[1], &k, &e);
    if (rc != 0) {
        ct_log(lg, CT_LOG_ERROR, "keygen: %s", e.msg);
        return ct_exit_code(rc);
    }
    char id[CT_KEY_ID];
    ct_curve_key_id_z85(k.pub, id);
    printf("wrote %s (secret) and %s.pub\npublic key %s\nkey id %s\n", argv[1], argv[1], k.pub, id);
    return 0;
}
