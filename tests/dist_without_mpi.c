/* host/dist as a build without MPI compiles it (no DATAMUX_HAVE_MPI): a process started as one of
 * several ranks is refused with what to do; outside a launcher it is a world of one whose
 * collectives leave the data as it is. */
#include <stdlib.h>
#include <string.h>

#include "host/dist/dist.h"
#include "tests/harness.h"

int main(int argc, char **argv) {
  dmx_error err = {{0}};
  th_begin("without MPI: one process is a world of one, collectives change nothing");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("PMI_SIZE");
  unsetenv("PMIX_SIZE");
  unsetenv("MPI_LOCALNRANKS");
  CHECK(!dmx_dist_available());
  CHECK(dmx_dist_launched_size() == 1);
  CHECK(dmx_dist_init(&argc, &argv, &err) == 0);
  const dmx_dist *w = dmx_dist_world();
  CHECK(w->rank == 0 && w->size == 1 && !w->mpi);
  float x[3] = {1, 2, 3};
  dmx_dist_sum_f32(x, 3);
  CHECK(x[0] == 1 && x[1] == 2 && x[2] == 3);
  CHECK(dmx_dist_max_int(7) == 7);
  int in[2] = {4, 5}, all[2] = {0, 0};
  dmx_dist_allgather(in, sizeof in, all);
  CHECK(all[0] == 4 && all[1] == 5);
  th_end();

  th_begin("without MPI: a launch as 2 ranks is refused, saying what to do");
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  CHECK(dmx_dist_launched_size() == 2);
  CHECKF(dmx_dist_init(&argc, &argv, &err) == -1 && strstr(err.msg, "built without MPI") &&
             strstr(err.msg, "install-deps.sh"),
         "%s", err.msg);
  setenv("OMPI_COMM_WORLD_SIZE", "x", 1); /* not a size: no launcher */
  CHECK(dmx_dist_launched_size() == 1);
  setenv("PMI_SIZE", "3", 1); /* MPICH's launcher */
  CHECK(dmx_dist_launched_size() == 3);
  th_end();
  return th_finish();
}
