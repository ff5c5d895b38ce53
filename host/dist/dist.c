/* The MPI side of data-parallel training (dist.h). Every MPI call's status is checked: the world
 * communicator returns errors (MPI_ERRORS_RETURN) instead of aborting inside the library, so a
 * failure is reported with the call, the rank and MPI's own words before the job is ended. */
#include "host/dist/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/common.h"

#ifdef DATAMUX_HAVE_MPI
#include <mpi.h>
#endif

static dmx_dist world = {0, 1, 0, 1, false};
static double collective_seconds;

static int env_int(const char *name) {
  const char *s = getenv(name);
  if (!s || !*s) return -1;
  char *end;
  long v = strtol(s, &end, 10);
  return *end == 0 && v > 0 && v < INT_MAX ? (int)v : -1;
}

int dmx_dist_launched_size(void) {
  /* Open MPI's mpirun, MPICH/Hydra (and Intel MPI), a PMIx launcher */
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    int v = env_int(vars[i]);
    if (v > 0) return v;
  }
  return 1;
}

const dmx_dist *dmx_dist_world(void) { return &world; }

double dmx_dist_take_seconds(void) {
  double s = collective_seconds;
  collective_seconds = 0;
  return s;
}

#ifdef DATAMUX_HAVE_MPI

bool dmx_dist_available(void) { return true; }

static MPI_Comm comm = MPI_COMM_NULL;

static void check_at(int rc, const char *call, const char *file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", rc);
  dmx_die_at(file, line, "%s failed: %s (another rank may have died: see its messages above)", call, text);
}
#define MPI_CHECK(call) check_at((call), #call, __FILE__, __LINE__)

static void abort_job(int code) {
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(comm != MPI_COMM_NULL ? comm : MPI_COMM_WORLD, code);
  exit(code); /* MPI_Abort does not return; in case it does */
}

int dmx_dist_init(int *argc, char ***argv, dmx_error *err) {
  if (world.mpi || dmx_dist_launched_size() <= 1) return 0;
  int provided = 0;
  /* FUNNELED: PoCL and OpenBLAS run threads, but only the main thread calls MPI */
  int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return dmx_fail(err, "MPI_Init_thread failed (error %d): check the mpirun command line", rc);
  world.mpi = true;
  comm = MPI_COMM_WORLD;
  MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm, &world.rank));
  MPI_CHECK(MPI_Comm_size(comm, &world.size));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &world.local_rank));
  MPI_CHECK(MPI_Comm_size(node, &world.local_size));
  MPI_CHECK(MPI_Comm_free(&node));
  char who[64];
  snprintf(who, sizeof who, "datamux rank %d of %d", world.rank, world.size);
  dmx_set_fatal_hook(who, abort_job);
  return 0;
}

void dmx_dist_finalize(void) {
  if (!world.mpi) return;
  dmx_set_fatal_hook(NULL, NULL);
  MPI_Finalize();
  world.mpi = false;
}

void dmx_dist_abort(int code) {
  if (world.mpi) abort_job(code);
  exit(code);
}

/* MPI counts are ints: large buffers go in pieces */
#define PIECE ((size_t)1 << 30)

static void sum(void *x, size_t n, size_t elem, MPI_Datatype type) {
  if (!world.mpi || world.size == 1) return;
  double t0 = dmx_now_seconds();
  for (size_t i = 0; i < n; i += PIECE) {
    size_t k = n - i < PIECE ? n - i : PIECE;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, (int)k, type, MPI_SUM, comm));
  }
  collective_seconds += dmx_now_seconds() - t0;
}

void dmx_dist_sum_f32(float *x, size_t n) { sum(x, n, sizeof *x, MPI_FLOAT); }
void dmx_dist_sum_f64(double *x, size_t n) { sum(x, n, sizeof *x, MPI_DOUBLE); }
void dmx_dist_sum_i64(int64_t *x, size_t n) { sum(x, n, sizeof *x, MPI_INT64_T); }

int dmx_dist_max_int(int v) {
  if (!world.mpi || world.size == 1) return v;
  int out = v;
  MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, comm));
  return out;
}

void dmx_dist_bcast(void *buf, size_t bytes, int root) {
  if (!world.mpi || world.size == 1) return;
  double t0 = dmx_now_seconds();
  for (size_t i = 0; i < bytes; i += PIECE) {
    size_t k = bytes - i < PIECE ? bytes - i : PIECE;
    MPI_CHECK(MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, comm));
  }
  collective_seconds += dmx_now_seconds() - t0;
}

void dmx_dist_allgather(const void *mine, size_t bytes, void *all) {
  if (!world.mpi || world.size == 1) {
    memmove(all, mine, bytes);
    return;
  }
  if (bytes > INT_MAX) dmx_die("dmx_dist_allgather: %zu bytes per rank are over MPI's int count", bytes);
  MPI_CHECK(MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, comm));
}

void dmx_dist_barrier(void) {
  if (world.mpi && world.size > 1) MPI_CHECK(MPI_Barrier(comm));
}

#else /* a build without MPI: a world of one */

bool dmx_dist_available(void) { return false; }

int dmx_dist_init(int *argc, char ***argv, dmx_error *err) {
  int n = dmx_dist_launched_size();
  if (n > 1)
    return dmx_fail(err,
                    "started as one of %d MPI ranks, but this datamux was built without MPI (DATAMUX_MPI=OFF, or "
                    "Open MPI was missing when it was configured): install it (scripts/install-deps.sh), "
                    "reconfigure and rebuild, or run without mpirun",
                    n);
  return 0;
}

void dmx_dist_finalize(void) {}
void dmx_dist_abort(int code) { exit(code); }
void dmx_dist_sum_f32(float *x, size_t n) {}
void dmx_dist_sum_f64(double *x, size_t n) {}
void dmx_dist_sum_i64(int64_t *x, size_t n) {}
int dmx_dist_max_int(int v) { return v; }
void dmx_dist_bcast(void *buf, size_t bytes, int root) {}
void dmx_dist_allgather(const void *mine, size_t bytes, void *all) { memmove(all, mine, bytes); }
void dmx_dist_barrier(void) {}

#endif
