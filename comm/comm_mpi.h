/* comm_mpi.h — private to comm/: what the MPI-using modules there share. */
#ifndef COTRAIN_COMM_MPI_H
#define COTRAIN_COMM_MPI_H

#include "cotrain/err.h"

/* Fills e with "<what> failed: <MPI's message for code>" and returns CT_ECOMM. */
int ct_comm_mpi_err(int code, const char *what, ct_err_t *e);

#endif
