// Preemption and time limits. A batch system announces the end of an allocation with a
// signal: Slurm sends SIGUSR1 (`#SBATCH --signal=B:USR1@120`, forwarded by mpirun) or
// SIGTERM (to every task under srun, and at the time limit). The handlers only record
// which signal came; the training loop looks at it between steps, the ranks agree on it
// (an error seen by one rank alone is the classic hang), and every rank then saves the
// checkpoint and exits with kRequeueExitCode.
#pragma once

namespace im::dist {

// "Saved on a signal or the wall-time limit: requeue me." EX_TEMPFAIL of sysexits.h;
// distinct from 0 (done), 1 (failed during the run) and 2 (bad input).
inline constexpr int kRequeueExitCode = 75;

// Installs the SIGUSR1 and SIGTERM handlers (idempotent).
void install_stop_handlers();
// The last stop signal received by this process, or 0.
int received_stop_signal();
// For tests: forget a received signal.
void clear_stop_signal();

}  // namespace im::dist
